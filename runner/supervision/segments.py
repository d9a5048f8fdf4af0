"""Shared memory segments for one worker's call images, with the slow kernel work kept off the call path.

Creating a fresh tmpfs segment costs far more than copying an image into it: the kernel allocates
and zeroes every page, and each first write to a page faults. Freeing it (unmap + unlink) costs
about as much again. A worker must get a *new* segment for every call, though: an algorithm may keep
the array it was handed, and its pixels must never change underneath it, so a segment is never
rewritten once a worker has seen its id.

``SegmentPool`` therefore keeps a few spare segments ready (allocated with ``posix_fallocate`` and
faulted into this process, sized like the last image) so a call only copies its pixels in, and it
frees used segments on a background thread:

- a spare is an unnamed tmpfs file (``O_TMPFILE``) until a call takes it and links it under its id,
  so spares are invisible to everyone else and vanish with the process, even on SIGKILL;
- a used segment's name is unlinked at once when it is handed back (cheap: this process still holds
  the file, so no page is freed yet; the worker can no longer open the id, a mapping it still holds
  stays valid), and the pages are released off the call path when the background thread drops the
  last reference.
"""

from __future__ import annotations

import mmap
import os
import threading
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from procvision_algorithm_sdk.shared_memory import HEADER_SIZE, SHM_PREFIX, ImageSegment

#: Used segments waiting to be freed beyond this count are freed inline instead (bounds the memory
#: held when calls come faster than the background thread frees).
MAX_BACKLOG = 8

Shape = tuple[int, int, int]


class SegmentPool:
    """Spare pre-faulted segments for one worker, and background freeing of used ones.

    Thread-safe. ``take`` hands out a spare of the requested shape (or None: the caller creates a
    segment inline); ``retire`` takes used segments back; ``close`` stops the background thread and
    removes every file the pool still holds. The thread starts on the first ``take``.
    """

    def __init__(self, shm_dir: str | Path, spares: int = 2, *, name: str = "pv-segments",
                 join_timeout_s: float = 5.0) -> None:
        self.shm_dir = str(shm_dir)
        self.spares_wanted = max(0, int(spares))
        self.name = name
        self.join_timeout_s = join_timeout_s
        self._cond = threading.Condition()
        self._shape: Shape | None = None  # shape of the last image taken: spares are made like it
        # These lists are only changed in place: the exit finalizer below holds them too.
        self._spares: list[_Spare] = []
        self._retired: list[_Held] = []
        self._errors: list[str] = []
        self._preparing = 0
        # Between a take and the following retire a call runs: spares are made only outside calls,
        # so the worker does not compete with this pool's kernel work for the CPU.
        self._in_call = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Last error of a spare's preparation (diagnostics; calls then create segments inline).
        self.last_prepare_error: str | None = None
        # A process that exits without close() (a runner that never shut down) must not leave its
        # spares behind: free them at interpreter exit too.
        self._finalizer = weakref.finalize(self, _release_at_exit, self._cond, self._stop, self._spares,
                                           self._retired)

    # --- call path -------------------------------------------------------------------------------

    def take(self, height: int, width: int, channels: int) -> ImageSegment | None:
        """A ready spare of exactly ``height x width x channels`` (header written), or None if none is
        ready. Either way, spares of this shape are prepared once the call ends (``retire``)."""
        shape = (int(height), int(width), int(channels))
        with self._cond:
            if self._stop.is_set():
                return None
            if shape != self._shape:
                # The images changed size: spares of the old size are of no use any more.
                self._retired.extend(_Held(spare.segment, spare.fd) for spare in self._spares)
                self._spares.clear()
                self._shape = shape
            spare = self._spares.pop() if self._spares else None
            self._in_call = True
            self._start_thread()
        if spare is None:
            return None
        try:
            _link(spare, self.shm_dir)
        except OSError as exc:
            with self._cond:
                # Naming spares does not work here (no /proc?): stop making them; calls go inline.
                self.last_prepare_error = f"could not name a spare segment, spares disabled: {exc}"
                self.spares_wanted = 0
                self._retired.append(_Held(spare.segment, spare.fd))
                self._retired.extend(_Held(s.segment, s.fd) for s in self._spares)
                self._spares.clear()
                self._cond.notify_all()
            return None
        return spare.segment

    def retire(self, segments: Iterable[ImageSegment]) -> None:
        """The call ended: take back its segments (may be none). Their ids stop existing now, their
        memory is freed later, and spares for the next call are prepared.

        Raises OSError (after handling all of them) if a segment could not be unlinked or freed, and
        reports errors the background thread met since the last call.
        """
        errors: list[str] = []
        inline: list[_Held] = []
        queued: list[_Held] = []
        for segment in segments:
            held = _Held(segment, None)
            try:
                # Holding the file keeps its pages: the unlink below is then only a name removal.
                held.fd = os.open(segment.path, os.O_RDONLY)
            except FileNotFoundError:
                pass  # already removed: only the mapping is left to free
            except OSError as exc:
                errors.append(f"{segment.id}: {exc}")
            try:
                os.unlink(segment.path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                errors.append(f"{segment.id}: {exc}")
            (queued if held.fd is not None else inline).append(held)
        with self._cond:
            self._in_call = False
            if self._stop.is_set() or self._thread is None:
                inline.extend(queued)
            else:
                self._retired.extend(queued)
                while len(self._retired) > MAX_BACKLOG:
                    inline.append(self._retired.pop(0))
                self._cond.notify_all()
            errors.extend(self._errors)
            self._errors.clear()
        errors.extend(_free_all(inline))
        if errors:
            raise OSError("could not free call images: " + "; ".join(errors))

    # --- state -----------------------------------------------------------------------------------

    @property
    def spare_count(self) -> int:
        with self._cond:
            return len(self._spares)

    @property
    def backlog(self) -> int:
        """Used segments not freed yet."""
        with self._cond:
            return len(self._retired)

    @property
    def thread(self) -> threading.Thread | None:
        """The background thread (None until the first ``take``)."""
        return self._thread

    def close(self) -> None:
        """Stop the background thread and remove every segment the pool holds. Idempotent.

        Raises OSError if a file could not be removed or the thread did not stop in time.
        """
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
            thread = self._thread
        errors: list[str] = []
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.join_timeout_s)
            if thread.is_alive():
                errors.append(f"thread {thread.name} did not stop within {self.join_timeout_s:g}s")
        with self._cond:
            leftovers = [_Held(s.segment, s.fd) for s in self._spares] + self._retired
            self._spares.clear()
            self._retired.clear()
            errors.extend(self._errors)
            self._errors.clear()
        errors.extend(_free_all(leftovers))
        self._finalizer.detach()
        if errors:
            raise OSError("could not free call images: " + "; ".join(errors))

    # --- background ------------------------------------------------------------------------------

    def _start_thread(self) -> None:
        # Called with the lock held.
        if self._thread is None and self.spares_wanted > 0:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _next_job(self) -> tuple[list[_Held], Shape | None] | None:
        """Wait for work: used segments to free, or the shape of a spare to make. None: stop."""
        with self._cond:
            while True:
                if self._stop.is_set():
                    return None
                if self._retired:
                    # Free first: that bounds the memory held when calls outpace this thread.
                    retired = list(self._retired)
                    self._retired.clear()
                    return retired, None
                if (not self._in_call and self._shape is not None
                        and len(self._spares) + self._preparing < self.spares_wanted):
                    self._preparing += 1
                    return [], self._shape
                self._cond.wait()

    def _run(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            retired, shape = job
            self._report(_free_all(retired))
            if shape is not None:
                self._prepare(shape)

    def _prepare(self, shape: Shape) -> None:
        spare: _Spare | None = None
        try:
            spare = make_spare(self.shm_dir, shape)
        except OSError as exc:
            with self._cond:
                self.last_prepare_error = str(exc)
        with self._cond:
            self._preparing -= 1
            if spare is not None and not self._stop.is_set() and shape == self._shape:
                self._spares.append(spare)
                return
            if spare is None and shape == self._shape:
                # Preparation failed (no O_TMPFILE, tmpfs full?): stop trying until a call asks again.
                self._shape = None
        if spare is not None:  # stopped or resized meanwhile
            self._report(_free_all([_Held(spare.segment, spare.fd)]))

    def _report(self, errors: list[str]) -> None:
        if errors:
            with self._cond:
                self._errors.extend(errors)


@dataclass
class _Spare:
    """A prepared segment not yet linked under its id: ``fd`` is its unnamed file."""

    segment: ImageSegment
    fd: int


@dataclass
class _Held:
    """A segment to free: its mapping and (if any) an fd that keeps its pages until closed."""

    segment: ImageSegment
    fd: int | None


def make_spare(shm_dir: str, shape: Shape) -> _Spare:
    """A new unnamed raw segment of ``shape`` in ``shm_dir``: pages allocated and faulted into this
    process, header written. ``take`` links it under ``segment.id`` when a call needs it.

    ``posix_fallocate`` makes a full tmpfs fail here with ENOSPC instead of a SIGBUS on a later write
    into the mapping. The pages are faulted in by reading /dev/zero into the mapping: unlike
    ``MAP_POPULATE`` or ``madvise`` that runs with the GIL released, so calls on other threads do not
    stall meanwhile.
    """
    height, width, channels = shape
    segment_id = SHM_PREFIX + uuid.uuid4().hex
    size = HEADER_SIZE + height * width * channels
    dir_fd = os.open(shm_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = os.open(".", os.O_TMPFILE | os.O_RDWR, 0o600, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    mm: mmap.mmap | None = None
    try:
        os.posix_fallocate(fd, 0, size)
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        _fault_in(mm)
        segment = ImageSegment.adopt_raw(segment_id, os.path.join(shm_dir, segment_id), mm, height, width, channels)
    except BaseException:
        if mm is not None:
            mm.close()
        os.close(fd)
        raise
    return _Spare(segment, fd)


def _link(spare: _Spare, shm_dir: str) -> None:
    """Give an unnamed spare its id (its file name), then drop the fd (the mapping keeps the file)."""
    dir_fd = os.open(shm_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # Relative to a directory fd: an absolute target can fail with EXDEV where /dev/shm is
        # mounted twice (the magic /proc link and the path resolve to different mounts).
        os.link(f"/proc/self/fd/{spare.fd}", os.path.basename(spare.segment.path), dst_dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    os.close(spare.fd)


def _fault_in(mm: mmap.mmap) -> None:
    zero = os.open("/dev/zero", os.O_RDONLY)
    try:
        with memoryview(mm) as view:
            done = 0
            while done < len(view):
                got = os.readv(zero, [view[done:]])
                if got <= 0:
                    raise OSError("could not pre-fault a shared memory segment: /dev/zero gave no data")
                done += got
    finally:
        os.close(zero)


def _release_at_exit(cond: threading.Condition, stop: threading.Event, spares: list[_Spare],
                     retired: list[_Held]) -> None:
    """Exit-time cleanup of a pool never closed (a spare finished later frees itself: stop is set)."""
    with cond:
        stop.set()
        cond.notify_all()
        leftovers = [_Held(s.segment, s.fd) for s in spares] + retired
        spares.clear()
        retired.clear()
    _free_all(leftovers)  # at exit nobody is left to report a failure to


def _free_all(held: Iterable[_Held]) -> list[str]:
    """Unmap each segment, remove its name if it still has one, close the fd holding its pages."""
    errors: list[str] = []
    for item in held:
        try:
            item.segment.unlink()  # FileNotFoundError (name already gone) is not an error there
        except OSError as exc:
            errors.append(f"{item.segment.id}: {exc}")
        if item.fd is not None:
            try:
                os.close(item.fd)
            except OSError as exc:
                errors.append(f"{item.segment.id}: {exc}")
    return errors


__all__ = ["SegmentPool", "make_spare", "MAX_BACKLOG"]
