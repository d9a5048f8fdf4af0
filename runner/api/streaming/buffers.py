"""Reused image arrays: an upload is written into pages that are already faulted in.

A fresh 7 MB array costs thousands of page faults as its pages are first written (several ms of
kernel time per call); an array that served an earlier call of the same size costs none. The pool
keeps at most ``keep`` arrays and ``max_bytes`` in all (memory a quiet daemon holds for nothing);
an array is handed back only once its call has ended (the worker slot copied it into a
shared-memory segment before the call returned).
"""

from __future__ import annotations

import threading

import numpy as np


class BufferPool:
    """Bounded pool of uint8 buffers by byte size. Thread-safe."""

    def __init__(self, keep: int = 4, max_bytes: int = 128 * 1024 * 1024) -> None:
        self.keep = max(0, int(keep))
        self.max_bytes = max(0, int(max_bytes))
        self._lock = threading.Lock()
        self._free: list[np.ndarray] = []
        #: Buffers handed out that came from the pool / had to be allocated (diagnostics, tests).
        self.reused = 0
        self.allocated = 0

    def take(self, nbytes: int) -> np.ndarray:
        """A 1-D uint8 array of exactly ``nbytes`` (contents undefined)."""
        with self._lock:
            for index, buf in enumerate(self._free):
                if buf.nbytes == nbytes:
                    self.reused += 1
                    return self._free.pop(index)
            self.allocated += 1
        return np.empty(nbytes, dtype=np.uint8)

    def give(self, buf: np.ndarray) -> None:
        """Hand ``buf`` back for a later call; the oldest buffer is dropped past ``keep``."""
        if self.keep == 0 or buf.nbytes > self.max_bytes:
            return
        with self._lock:
            self._free.append(buf)
            while len(self._free) > self.keep or sum(b.nbytes for b in self._free) > self.max_bytes:
                self._free.pop(0)
