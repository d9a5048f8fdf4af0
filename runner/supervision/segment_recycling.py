"""Whether a used segment may be written again, for ``SegmentPool`` (``segments.py``).

A used segment's call id stops existing first (it is renamed to a fresh id nobody was told), so no
process can open it by that id any more; whoever opened it before still holds an open file
description, which the lease test (``segment_files.unused_elsewhere``) then sees. Where leases do
not work (not the file's owner, leases off...) recycling switches itself off for good and every
call gets a fresh segment.
"""

from __future__ import annotations

import os
import threading
import uuid

from procvision_algorithm_sdk.shared_memory import SHM_PREFIX

from .segment_files import Spare, unlink_name, unused_elsewhere


class SegmentRecycler:
    """The lease tests and renames that prove used segments free, and their counters.

    Shares the pool's lock (re-entrant), so its counters and switch change atomically with the
    pool's spares.
    """

    def __init__(self, shm_dir: str, cond: threading.Condition) -> None:
        self.shm_dir = shm_dir
        self._cond = cond
        self.enabled = True  # False once leases proved unusable here
        #: Why recycling was switched off (diagnostics; used segments are then always freed).
        self.last_error: str | None = None
        #: Used segments made spares again / refused because another process still held them.
        self.recycled = 0
        self.refused = 0

    def unused(self, fd: int) -> bool:
        """The lease test; a test that cannot be made switches recycling off and answers False."""
        try:
            return unused_elsewhere(fd)
        except OSError as exc:
            self._disable(exc)
            return False

    def still_free(self, spare: Spare) -> bool:
        """A recycled spare about to be handed out: nobody found and mapped it meanwhile."""
        if self.unused(spare.fd):
            return True
        with self._cond:
            self.refused += 1
        return False

    def reclaim(self, spare: Spare, stopping: bool, errors: list[str]) -> Spare | None:
        """The used ``spare`` under a fresh, never published id if nobody else holds it, else None.

        Either way its call id is gone when this returns; on None every name it had is removed
        (the caller frees its pages). Failures to remove a name are added to ``errors``.
        """
        segment = spare.segment
        with self._cond:
            wanted = self.enabled and not stopping
        if wanted:
            new_id = SHM_PREFIX + uuid.uuid4().hex
            new_path = os.path.join(self.shm_dir, new_id)
            try:
                os.rename(segment.path, new_path)
            except OSError as exc:
                wanted = False
                if not isinstance(exc, FileNotFoundError):
                    errors.append(f"{segment.id}: {exc}")
        if not wanted:
            unlink_name(segment.path, segment.id, errors)
            return None
        if self.unused(spare.fd):
            return Spare(segment.moved(new_id, new_path), spare.fd, named=True)
        with self._cond:
            self.refused += 1
        unlink_name(new_path, new_id, errors)
        return None

    def _disable(self, exc: OSError) -> None:
        with self._cond:
            self.enabled = False
            self.last_error = (f"cannot tell whether a used segment is still held (file lease refused: "
                               f"{exc}); every call now gets a fresh segment")
