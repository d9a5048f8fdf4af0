"""Shared memory segments for one worker's call images, with the slow kernel work kept off the call path.

Creating a fresh tmpfs segment costs far more than copying an image into it: the kernel allocates
and zeroes every page, and each first write to a page faults. Freeing it (unmap + unlink) costs
about as much again. An algorithm may keep the array it was handed, though, and its pixels must
never change underneath it: a segment is rewritten for a later call only once it is *proved* that
no other process has it open or mapped any more.

``SegmentPool`` therefore keeps a few spare segments ready (allocated with ``posix_fallocate`` and
faulted into this process, sized like the last image) so a call only copies its pixels in:

- a new spare is an unnamed tmpfs file (``O_TMPFILE``) until a call takes it and links it under its
  id, so it is invisible to everyone else and vanishes with the process, even on SIGKILL;
- when the call ends its id stops existing at once: the file is renamed to a fresh, never published
  id. Then a write lease is asked for on this process's own descriptor (``unused_elsewhere``): the
  kernel grants it only if no other open file description of the file exists, and a worker's
  mapping keeps its description alive until it is unmapped. Granted (the worker dropped the array):
  the lease is released at once and the segment becomes a spare again under its new id, its pages
  still allocated and mapped. Refused (the algorithm kept the array, or the worker died holding it):
  the new name is removed and the pages are freed by a background thread, exactly as before; the
  worker's mapping stays valid and unchanged;
- just before a recycled spare is handed to the next call the lease test is repeated, so a process
  that found the parked name in the folder and mapped it meanwhile also keeps its pixels.

A lease is only ever held for the instant of a test. A process opening the file during that instant
breaks it: the kernel signals this process (``segment_files.LEASE_SIGNAL``, ignored by default, instead of SIGIO,
whose default action would end the runner) and the opener waits until the lease is released.

Recycled spares have names, so a runner killed by SIGKILL leaves them behind: ``remove_stale_segments``
(called when a supervisor starts) removes ``pvshm-*`` files that are old and that nobody holds.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from pathlib import Path

from procvision_algorithm_sdk.shared_memory import ImageSegment

from .segment_files import (
    Held,
    Shape,
    Spare,
    detach,
    free_all,
    make_spare,
    release_at_exit,
    unlink_name,
    unused_elsewhere,
)
from .segment_files import link_spare as _link
from .segment_recycling import SegmentRecycler
from .stale_segments import STALE_SEGMENT_AGE_S, StaleSweep, remove_stale_segments

#: Used segments waiting to be freed beyond this count are freed inline instead (bounds the memory
#: held when calls come faster than the background thread frees).
MAX_BACKLOG = 8


class SegmentPool:
    """Spare pre-faulted segments for one worker: recycled when provably unused, else freed off the call path.

    Thread-safe. ``take`` hands out a spare of the requested shape (or None: the caller creates a
    segment inline); ``retire`` takes used segments back (recycling those nobody else holds);
    ``close`` stops the background thread and removes every file the pool still holds. The thread
    starts on the first ``take``.
    """

    def __init__(self, shm_dir: str | Path, spares: int = 2, *, name: str = "pv-segments",
                 join_timeout_s: float = 5.0) -> None:
        self.shm_dir = str(shm_dir)
        self.spares_wanted = max(0, int(spares))
        self.name = name
        self.join_timeout_s = join_timeout_s
        self._cond = threading.Condition()
        self._shape: Shape | None = None  # shape of the last image taken: spares are made like it
        # These containers are only changed in place: the exit finalizer below holds them too.
        self._spares: list[Spare] = []
        self._retired: list[Held] = []
        self._out: dict[str, Spare] = {}  # taken by a call and not handed back yet, by id
        self._errors: list[str] = []
        self._preparing = 0
        # Between a take and the following retire a call runs: spares are made outside calls (but
        # for the first when none is left), so the worker does not compete with this pool's kernel
        # work for the CPU.
        self._in_call = False
        self._recycler = SegmentRecycler(self.shm_dir, self._cond)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Last error of a spare's preparation (diagnostics; calls then create segments inline).
        self.last_prepare_error: str | None = None
        # A process that exits without close() (a runner that never shut down) must not leave its
        # spares behind: free them at interpreter exit too.
        self._finalizer = weakref.finalize(self, release_at_exit, self._cond, self._stop, self._spares,
                                           self._retired, self._out)

    # --- call path -------------------------------------------------------------------------------

    def expect(self, height: int, width: int, channels: int) -> None:
        """Prepare spares of this shape now, before any call asks (a worker that starts knows the
        size of the images its predecessor got): its first calls then find faulted pages ready."""
        shape = (int(height), int(width), int(channels))
        with self._cond:
            if self._stop.is_set() or self._shape == shape:
                return
            self._retired.extend(Held(spare.segment, spare.fd) for spare in self._spares)
            self._spares.clear()
            self._shape = shape
            self._start_thread()
            self._cond.notify_all()

    def take(self, height: int, width: int, channels: int) -> ImageSegment | None:
        """A ready spare of exactly ``height x width x channels`` (header written), or None if none is
        ready. Either way, spares of this shape are prepared once the call ends (``retire``)."""
        shape = (int(height), int(width), int(channels))
        with self._cond:
            if self._stop.is_set():
                return None
            if shape != self._shape:
                # The images changed size: spares of the old size are of no use any more.
                self._retired.extend(Held(spare.segment, spare.fd) for spare in self._spares)
                self._spares.clear()
                self._shape = shape
                self._cond.notify_all()
            self._in_call = True
            # Chosen under the lock: a pool without a usable spare at the start of the call answers
            # None, even if its thread makes one meanwhile.
            spare = self._pop_usable()
            if spare is not None and spare.named:
                self._out[spare.segment.id] = spare
            self._start_thread()
        if spare is None or spare.named:
            return spare.segment if spare is not None else None
        try:
            _link(spare, self.shm_dir)
        except OSError as exc:
            with self._cond:
                # Naming spares does not work here (no /proc?): stop making them; calls go inline.
                self.last_prepare_error = f"could not name a spare segment, spares disabled: {exc}"
                self.spares_wanted = 0
                self._retired.append(Held(spare.segment, spare.fd))
                self._retired.extend(Held(s.segment, s.fd) for s in self._spares)
                self._spares.clear()
                self._cond.notify_all()
            return None
        with self._cond:
            self._out[spare.segment.id] = spare
        return spare.segment

    def _pop_usable(self) -> Spare | None:
        """The next spare to hand out (lock held). A recycled one gets the lease test again right
        before its pixels are overwritten: one a process found and mapped meanwhile is freed."""
        while self._spares:
            spare = self._spares.pop()
            if not spare.named or self._recycler.still_free(spare):
                return spare
            self._retired.append(Held(spare.segment, spare.fd))
            self._cond.notify_all()
        return None

    def retire(self, segments: Iterable[ImageSegment]) -> None:
        """The call ended: take back its segments (may be none). Their ids stop existing now; a
        segment no other process holds becomes a spare again (under a new id), any other is freed
        later; missing spares are prepared.

        Raises OSError (after handling all of them) if a segment could not be unlinked or freed, and
        reports errors the background thread met since the last call.
        """
        errors: list[str] = []
        inline: list[Held] = []
        queued: list[Held] = []
        for segment in segments:
            with self._cond:
                spare = self._out.pop(segment.id, None)
            if spare is not None:
                held = self._recycle(spare, errors)
                if held is not None:
                    queued.append(held)
                continue
            held = detach(segment, errors)
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
        errors.extend(free_all(inline))
        if errors:
            raise OSError("could not free call images: " + "; ".join(errors))

    def _recycle(self, spare: Spare, errors: list[str]) -> Held | None:
        """Make a used pooled segment a spare again if nobody else holds it (``SegmentRecycler``);
        else return it to free."""
        moved = self._recycler.reclaim(spare, self._stop.is_set(), errors)
        if moved is not None:
            segment = moved.segment
            with self._cond:
                if (not self._stop.is_set() and (segment.height, segment.width, segment.channels) == self._shape
                        and len(self._spares) < self.spares_wanted):
                    self._spares.append(moved)
                    self._recycler.recycled += 1
                    return None
            unlink_name(segment.path, segment.id, errors)
        return Held(spare.segment, spare.fd)

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
    def recycling(self) -> bool:
        """Whether used segments nobody holds are made spares again (False if leases do not work here)."""
        with self._cond:
            return self._recycler.enabled

    @property
    def recycled(self) -> int:
        """Used segments made spares again."""
        return self._recycler.recycled

    @property
    def refused(self) -> int:
        """Used segments not made spares because another process still held them."""
        return self._recycler.refused

    @property
    def last_recycle_error(self) -> str | None:
        """Why recycling was switched off (diagnostics; used segments are then always freed)."""
        return self._recycler.last_error

    @property
    def thread(self) -> threading.Thread | None:
        """The background thread (None until the first ``take``)."""
        return self._thread

    def close(self) -> None:
        """Stop the background thread and remove every segment the pool holds. Idempotent.

        Segments taken and not handed back stay until ``retire`` (which then frees them).
        Raises OSError if a file could not be removed or the thread did not stop in time.
        """
        # Nothing is added to the spares once stop is set, so they are freed before the thread is
        # joined: by the time it has stopped, they are gone.
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
            thread = self._thread
            leftovers = [Held(s.segment, s.fd) for s in self._spares] + self._retired
            self._spares.clear()
            self._retired.clear()
        errors = free_all(leftovers)
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.join_timeout_s)
            if thread.is_alive():
                errors.append(f"thread {thread.name} did not stop within {self.join_timeout_s:g}s")
        with self._cond:
            leftovers = [Held(s.segment, s.fd) for s in self._spares] + self._retired
            self._spares.clear()
            self._retired.clear()
            errors.extend(self._errors)
            self._errors.clear()
        errors.extend(free_all(leftovers))
        if errors:
            raise OSError("could not free call images: " + "; ".join(errors))

    # --- background ------------------------------------------------------------------------------

    def _start_thread(self) -> None:
        # Called with the lock held.
        if self._thread is None and self.spares_wanted > 0:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _next_job(self) -> tuple[list[Held], Shape | None] | None:
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
                # Spares are made between calls, except when the pool holds none at all (not even
                # one in use that may come back): back-to-back calls leave no gap, and one spare is
                # enough to start recycling.
                starved = not self._spares and not self._out and self._preparing == 0
                if ((not self._in_call or starved) and self._shape is not None
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
            self._report(free_all(retired))
            if shape is not None:
                self._prepare(shape)

    def _prepare(self, shape: Shape) -> None:
        spare: Spare | None = None
        try:
            spare = make_spare(self.shm_dir, shape)
        except OSError as exc:
            with self._cond:
                self.last_prepare_error = str(exc)
        with self._cond:
            self._preparing -= 1
            if (spare is not None and not self._stop.is_set() and shape == self._shape
                    and len(self._spares) < self.spares_wanted):
                self._spares.append(spare)
                return
            if spare is None and shape == self._shape:
                # Preparation failed (no O_TMPFILE, tmpfs full?): stop trying until a call asks again.
                self._shape = None
        if spare is not None:  # stopped, resized or refilled by recycling meanwhile
            self._report(free_all([Held(spare.segment, spare.fd)]))

    def _report(self, errors: list[str]) -> None:
        if errors:
            with self._cond:
                self._errors.extend(errors)


__all__ = ["SegmentPool", "StaleSweep", "make_spare", "remove_stale_segments", "unused_elsewhere", "MAX_BACKLOG",
           "STALE_SEGMENT_AGE_S"]
