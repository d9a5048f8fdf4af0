"""The size of the images this station's calls carry, shared by every worker of the daemon.

A station's cameras rarely change resolution. A worker that starts (a new version's first worker
after a switch, an added worker, a restart) prepares spare segments of the size the station's calls
last had, so its first calls find faulted-in shared memory instead of making a segment each (about
4 ms for a 1920x1200x3 frame, measured by ``benchmarks/call_latency.py``).
"""

from __future__ import annotations

import threading

#: (height, width, channels) of one image; mono images have one channel.
ImageShape = tuple[int, int, int]


def shape_of(dims: tuple[int, ...]) -> ImageShape:
    """(H, W) or (H, W, C) as (H, W, C)."""
    return (int(dims[0]), int(dims[1]), int(dims[2]) if len(dims) > 2 else 1)


class LastImageSize:
    """The shape of the last image any worker of the daemon was given. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shape: ImageShape | None = None

    def note(self, shape: ImageShape) -> None:
        """Remember ``shape`` as the size calls carry now."""
        with self._lock:
            self._shape = shape

    @property
    def shape(self) -> ImageShape | None:
        """The last shape noted (None: no call has carried an image yet)."""
        with self._lock:
            return self._shape
