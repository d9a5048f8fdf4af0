"""``ImageSegment``: one image in a shared memory segment, seen from the side that owns it (the runner)."""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import time
import uuid
from typing import Any

import numpy as np

from .segment_format import (
    _HEADER,
    _MONO_SPACES,
    FORMAT_VERSION,
    HEADER_SIZE,
    KIND_ENCODED,
    KIND_RAW,
    MAGIC,
    SEGMENT_MODE,
    SHM_PREFIX,
    _as_uint8_image,
    _segment_path,
)


class ImageSegment:
    """One image in a shared memory segment, seen from the side that owns it (the runner).

    Use as a context manager: leaving the block unlinks the segment. The id is also the file name
    under the shm directory, so it can be handed to a worker as ``shared_mem_id``.
    """

    def __init__(self, segment_id: str, path: str, mm: mmap.mmap | None, kind: int, height: int, width: int,
                 channels: int, nbytes: int) -> None:
        self.id = segment_id
        self.path = path
        self.kind = kind
        self.height = height
        self.width = width
        self.channels = channels
        self.nbytes = nbytes
        self._mm: mmap.mmap | None = mm
        self.array: np.ndarray | None = None
        if kind == KIND_RAW and mm is not None:
            self.array = np.ndarray((height, width, channels), dtype=np.uint8, buffer=mm, offset=HEADER_SIZE)

    # --- creation -------------------------------------------------------------------------------

    @classmethod
    def _create(cls, kind: int, height: int, width: int, channels: int, payload_len: int,
                shm_dir: str | None, segment_id: str | None = None) -> ImageSegment:
        segment_id = segment_id or SHM_PREFIX + uuid.uuid4().hex
        path = _segment_path(segment_id, shm_dir)
        size = HEADER_SIZE + payload_len
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, SEGMENT_MODE)
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        mm[:_HEADER.size] = _HEADER.pack(MAGIC, FORMAT_VERSION, kind, 0, height, width, channels, payload_len)
        return cls(segment_id, path, mm, kind, height, width, channels, payload_len)

    @classmethod
    def allocate(cls, height: int, width: int, channels: int = 3, shm_dir: str | None = None,
                 *, segment_id: str | None = None) -> ImageSegment:
        """A new zeroed segment; fill ``.array`` (H x W x C uint8 view) in place, no extra copy."""
        if height <= 0 or width <= 0:
            raise ValueError(f"image size must be positive, got {height}x{width}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        return cls._create(KIND_RAW, int(height), int(width), int(channels),
                           int(height) * int(width) * int(channels), shm_dir, segment_id)

    @classmethod
    def create_array(cls, array: np.ndarray, shm_dir: str | None = None, *,
                     segment_id: str | None = None) -> ImageSegment:
        """A new segment holding a copy of ``array`` (uint8 HxW, HxWx1 or HxWx3)."""
        arr = _as_uint8_image(array)
        seg = cls.allocate(arr.shape[0], arr.shape[1], arr.shape[2], shm_dir, segment_id=segment_id)
        assert seg.array is not None
        seg.array[...] = arr
        return seg

    @classmethod
    def adopt_raw(cls, segment_id: str, path: str, mm: mmap.mmap, height: int, width: int,
                  channels: int = 3) -> ImageSegment:
        """Wrap a segment file the caller created and mapped read-write ahead of time (for example
        pre-allocated and pre-faulted off the hot path), writing the raw-image header into it.

        ``mm`` must hold at least ``HEADER_SIZE + height * width * channels`` bytes; fill ``.array``.
        The segment then belongs to the returned object (``unlink`` removes ``path``).
        """
        if height <= 0 or width <= 0 or channels not in (1, 3):
            raise ValueError(f"bad raw segment geometry {height}x{width}x{channels}")
        _segment_path(segment_id, os.path.dirname(path))  # validates the id
        payload_len = height * width * channels
        if len(mm) < HEADER_SIZE + payload_len:
            raise ValueError(f"mapping of {len(mm)} bytes is too small for a {height}x{width}x{channels} image")
        mm[:_HEADER.size] = _HEADER.pack(MAGIC, FORMAT_VERSION, KIND_RAW, 0, height, width, channels, payload_len)
        return cls(segment_id, path, mm, KIND_RAW, height, width, channels, payload_len)

    @classmethod
    def write_array(cls, array: np.ndarray, shm_dir: str | None = None, *,
                    segment_id: str | None = None) -> ImageSegment:
        """A new segment holding a copy of ``array``, written with ``pwrite`` and not mapped here.

        Cheaper than ``create_array`` for a one-off segment (no page faults in this process); the
        returned segment has ``.array`` None and is removed with ``unlink`` as usual.
        """
        arr = np.ascontiguousarray(_as_uint8_image(array))
        segment_id = segment_id or SHM_PREFIX + uuid.uuid4().hex
        path = _segment_path(segment_id, shm_dir)
        height, width, channels = (int(n) for n in arr.shape)
        header = _HEADER.pack(MAGIC, FORMAT_VERSION, KIND_RAW, 0, height, width, channels, arr.nbytes)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, SEGMENT_MODE)
        try:
            _pwrite_all(fd, memoryview(header.ljust(HEADER_SIZE, b"\0")), 0)
            _pwrite_all(fd, arr.data.cast("B"), HEADER_SIZE)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        return cls(segment_id, path, None, KIND_RAW, height, width, channels, arr.nbytes)

    @classmethod
    def create_encoded(cls, data: bytes, shm_dir: str | None = None, *, width: int | None = None,
                       height: int | None = None, segment_id: str | None = None) -> ImageSegment:
        """A new segment holding encoded image bytes (JPEG/PNG), decoded by the reader.

        ``width``/``height`` are read from the image header with pillow when not given (0 if
        pillow is not installed); they only serve ``image_meta()``.
        """
        payload = bytes(data)
        if not payload:
            raise ValueError("encoded image data is empty")
        if width is None or height is None:
            width, height = _probe_size(payload)
        seg = cls._create(KIND_ENCODED, int(height), int(width), 0, len(payload), shm_dir, segment_id)
        assert seg._mm is not None
        seg._mm[HEADER_SIZE:HEADER_SIZE + len(payload)] = payload
        return seg

    # --- use ------------------------------------------------------------------------------------

    def image_meta(self, color_space: str = "RGB", camera_id: str = "",
                   timestamp_ms: int | None = None) -> dict[str, Any]:
        """The ``image_meta`` dict a call carries for this image.

        For a one-channel segment ``color_space`` becomes ``"Mono8"`` unless a mono name is given.
        """
        if self.kind == KIND_RAW and self.channels == 1:
            color_space = color_space if color_space.upper() in _MONO_SPACES else "Mono8"
        return {"width": self.width, "height": self.height,
                "timestamp_ms": int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms),
                "camera_id": camera_id, "color_space": color_space}

    def pinned_pixels(self) -> np.ndarray:
        """The raw pixels (H x W x C) as an array that keeps this mapping alive: while it or a view
        of it exists, ``close`` leaves the memory mapped (``.array`` does not pin it), so a thread
        still writing into it never touches unmapped memory. ValueError for an encoded or closed segment."""
        if self.kind != KIND_RAW or self._mm is None:
            raise ValueError(f"segment {self.id} holds no mapped raw pixels")
        count = self.height * self.width * self.channels
        flat = np.frombuffer(self._mm, dtype=np.uint8, count=count, offset=HEADER_SIZE)
        return flat.reshape(self.height, self.width, self.channels)

    def moved(self, segment_id: str, path: str) -> ImageSegment:
        """The same segment under a new id: its file was renamed to ``path`` by the caller.

        The returned object takes over the mapping (header and ``.array`` stay as they are); this
        one lets go of it, so closing or unlinking it later no longer touches the segment.
        """
        _segment_path(segment_id, os.path.dirname(path))  # validates the id
        mm, self._mm = self._mm, None
        self.array = None
        return type(self)(segment_id, path, mm, self.kind, self.height, self.width, self.channels, self.nbytes)

    def close(self) -> None:
        """Unmap the segment from this process (idempotent). The segment itself stays."""
        self.array = None
        mm, self._mm = self._mm, None
        if mm is not None:
            # BufferError: the caller still holds views of .array; the mapping goes with the last view.
            with contextlib.suppress(BufferError):
                mm.close()

    def unlink(self) -> None:
        """Unmap and remove the segment (idempotent)."""
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return

    def __enter__(self) -> ImageSegment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.unlink()

    def __repr__(self) -> str:
        return f"ImageSegment(id={self.id!r}, kind={self.kind}, {self.height}x{self.width}x{self.channels})"


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):  # tmpfs writes everything at once; a short write just continues
        done = os.pwrite(fd, data, offset)
        if done <= 0:
            raise OSError(f"short write to shared memory segment at offset {offset}")
        data, offset = data[done:], offset + done


def _probe_size(data: bytes) -> tuple[int, int]:
    try:
        from PIL import Image
    except ImportError:
        return 0, 0
    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.size[0]), int(img.size[1])
    except (OSError, ValueError) as exc:
        raise ValueError(f"encoded image data is not a readable image: {exc}") from exc
