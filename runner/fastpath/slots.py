"""Frame slots: shared memory a local client writes camera frames into itself (no image bytes in requests).

A client leases a slot of one image shape (``FrameSlots.lease``); the daemon creates a
``pvslot-<hex>`` file (mode 0600, pages allocated up front so a full tmpfs fails here and not as a
SIGBUS later) in the shared-memory folder and answers its id, its path and a secret lease key. The
client maps the file, writes a frame into it, and calls ``/execute`` naming the slot and presenting
the key; the daemon reads the pixels from its own mapping. Only the caller holding the key can use
or release a slot (2051 otherwise). Slots are bounded (``frame_slots_max``, 2052 past it); a slot is
reclaimed when its lease expires (``frame_slot_lease_s`` after its last use) or, if the client
named its pid, as soon as that process is gone. A slot runs one call at a time (2053).

The clock and the liveness check are injectable so tests run without waiting.
"""

from __future__ import annotations

import contextlib
import hmac
import math
import mmap
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runner.errors import PackageErrorCode, RunnerError
from runner.store.space import raise_if_disk_full
from runner.supervision.segments import STALE_SEGMENT_AGE_S, remove_stale_segments

SLOT_PREFIX = "pvslot-"
SLOT_MODE = 0o600
#: Calls sweep dead and expired slots at most this often (leases sweep whenever they run).
SWEEP_INTERVAL_S = 1.0


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[-1].split()
    except OSError:
        return False
    return bool(fields) and fields[0] != b"Z"


@dataclass
class Slot:
    """One leased frame slot."""

    slot_id: str
    key: str
    path: Path
    shape: tuple[int, ...]
    client_pid: int | None
    expires_at: float
    mm: mmap.mmap
    busy: bool = False

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape)

    def array(self) -> np.ndarray:
        """The slot's pixels as a read-only view of the daemon's mapping (no copy)."""
        view = np.frombuffer(self.mm, dtype=np.uint8, count=self.nbytes).reshape(self.shape)
        view.flags.writeable = False
        return view


def _error(code: PackageErrorCode, message: str, **details: object) -> RunnerError:
    return RunnerError(code, message, **details)


class FrameSlots:
    """The daemon's table of leased frame slots. Thread-safe."""

    def __init__(self, shm_dir: Path, max_slots: int, lease_s: float, *,
                 clock: Callable[[], float] = time.monotonic, alive: Callable[[int], bool] = process_alive,
                 max_bytes: int | None = None, stale_after_s: float = STALE_SEGMENT_AGE_S) -> None:
        self.shm_dir = Path(shm_dir)
        self.max_slots = max_slots
        self.lease_s = lease_s
        self.max_bytes = max_bytes
        self._clock = clock
        self._alive = alive
        self._lock = threading.Lock()
        self._slots: dict[str, Slot] = {}
        self._next_sweep = 0.0
        # A daemon killed with slots leased left their files behind; nobody holds those any more
        # (a live daemon keeps its slots mapped, which the sweep's lease test sees).
        self.stale = remove_stale_segments(self.shm_dir, stale_after_s, prefix=SLOT_PREFIX)

    # --- leases -----------------------------------------------------------------------------------

    def lease(self, shape: tuple[int, ...], client_pid: int | None = None) -> Slot:
        """A new slot for frames of ``shape`` (H,W or H,W,3, uint8)."""
        if len(shape) not in (2, 3) or any(int(n) <= 0 for n in shape) or (len(shape) == 3 and shape[2] not in (1, 3)):
            raise _error(PackageErrorCode.SLOT_INVALID, f"a frame slot needs a shape [H, W] or [H, W, 3] of positive "
                         f"integers, not {list(shape)}", shape=list(shape))
        nbytes = math.prod(int(n) for n in shape)  # Python ints: numpy would overflow on huge shapes
        if self.max_bytes is not None and nbytes > self.max_bytes:
            raise _error(PackageErrorCode.SLOT_INVALID, f"a frame of shape {list(shape)} is {nbytes} bytes, over "
                         f"max_image_bytes={self.max_bytes}", shape=list(shape), limit_bytes=self.max_bytes)
        self.reclaim()
        with self._lock:
            if len(self._slots) >= self.max_slots:
                raise _error(PackageErrorCode.SLOTS_EXHAUSTED,
                             f"all {self.max_slots} frame slots are leased; release one (DELETE "
                             "/fastpath/slots/{id}), wait for a lease to expire, or raise frame_slots_max",
                             frame_slots_max=self.max_slots)
            slot_id = SLOT_PREFIX + secrets.token_hex(12)
            path = self.shm_dir / slot_id
            slot = self._create(slot_id, path, tuple(int(n) for n in shape), client_pid)
            self._slots[slot_id] = slot
            return slot

    def _create(self, slot_id: str, path: Path, shape: tuple[int, ...], client_pid: int | None) -> Slot:
        size = math.prod(shape)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, SLOT_MODE)
        try:
            os.posix_fallocate(fd, 0, size)
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, OverflowError) as exc:  # OverflowError: a size past what the OS calls take
            os.unlink(path)
            raise_if_disk_full(exc, self.shm_dir, f"a frame slot of {size} bytes")
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise _error(PackageErrorCode.SLOT_INVALID, f"a frame slot of shape {list(shape)} ({size} bytes) could "
                         f"not be made in {self.shm_dir} ({reason}); lease a frame of the camera's size",
                         shape=list(shape)) from exc
        except BaseException:
            os.unlink(path)
            raise
        finally:
            os.close(fd)
        return Slot(slot_id, secrets.token_urlsafe(24), path, shape, client_pid, self._clock() + self.lease_s, mm)

    def _get(self, slot_id: str, key: str | None) -> Slot:
        slot = self._slots.get(slot_id)
        if slot is not None and not slot.busy and slot.expires_at <= self._clock():
            slot = None  # expired: freed by the next sweep
        if slot is None:
            raise _error(PackageErrorCode.SLOT_NOT_FOUND, f"no frame slot {slot_id!r}: it was never leased, was "
                         "released, or its lease expired; lease a new one", slot=slot_id)
        if key is None or not hmac.compare_digest(slot.key, key):
            raise _error(PackageErrorCode.SLOT_FOREIGN, f"frame slot {slot_id!r} is leased to another caller; "
                         "present its lease key (X-Slot-Key) or lease your own slot", slot=slot_id)
        return slot

    def acquire(self, slot_id: str, key: str | None) -> Slot:
        """The slot for one call (renews its lease); ``release_call`` must follow."""
        if self._clock() >= self._next_sweep:
            # At most once a second: the sweep reads /proc for every client, which a call every few
            # ms must not pay each time. An expired slot is refused below even between sweeps.
            self.reclaim()
        with self._lock:
            slot = self._get(slot_id, key)
            if slot.busy:
                raise _error(PackageErrorCode.SLOT_BUSY, f"a call is already running on frame slot {slot_id!r}; "
                             "wait for it or lease another slot", slot=slot_id)
            slot.busy = True
            slot.expires_at = self._clock() + self.lease_s
            return slot

    def release_call(self, slot: Slot) -> None:
        with self._lock:
            slot.busy = False
            slot.expires_at = self._clock() + self.lease_s

    def release(self, slot_id: str, key: str | None) -> None:
        """End a lease (the caller is done with the slot)."""
        with self._lock:
            slot = self._get(slot_id, key)
            if slot.busy:
                raise _error(PackageErrorCode.SLOT_BUSY, f"frame slot {slot_id!r} has a call running; release "
                             "it after the call", slot=slot_id)
            del self._slots[slot_id]
        _free(slot)

    def reclaim(self) -> list[str]:
        """Free slots whose lease expired or whose client process is gone (not while in a call)."""
        now = self._clock()
        with self._lock:
            self._next_sweep = now + SWEEP_INTERVAL_S
            gone = [s for s in self._slots.values() if not s.busy and (
                s.expires_at <= now or (s.client_pid is not None and not self._alive(s.client_pid)))]
            for slot in gone:
                del self._slots[slot.slot_id]
        for slot in gone:
            _free(slot)
        return [slot.slot_id for slot in gone]

    def count(self) -> int:
        with self._lock:
            return len(self._slots)

    def close(self) -> None:
        """Free every slot (daemon shutdown)."""
        with self._lock:
            slots = list(self._slots.values())
            self._slots.clear()
        for slot in slots:
            _free(slot)


def _free(slot: Slot) -> None:
    with contextlib.suppress(FileNotFoundError):
        slot.path.unlink()
    # A call's array may still view the mapping (it ends with the call); the pages go with it then.
    with contextlib.suppress(BufferError):
        slot.mm.close()
