"""One uploaded image, received chunk by chunk.

``.npy`` files and raw pixels (shape known up front) are written straight into a reused array from
a ``BufferPool`` as the bytes arrive: the header is parsed from the first bytes, the array is sized
from it (limits checked before any pixel is stored), and every later chunk is one copy into pages
that are already faulted in. PNG and JPEG are collected (capped) and decoded later, off the event loop.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from runner.errors import RunnerError
from runner.routing.images import (
    DEFAULT_MAX_PIXELS,
    NPY_MAGIC,
    check_array_header,
    check_color_space,
    decode_image,
    image_error,
    sniff,
)
from runner.supervision.dialects import ImageInput
from runner.supervision.dialects.reservation import ImageReservation

from ..limits import too_large
from .buffers import BufferPool

#: Bytes needed to tell PNG / JPEG / .npy apart.
_SNIFF_BYTES = 8

#: Where an upload's pixels landed: the segment the worker was handed as it is (no copy at all);
#: a worker's segment that another worker then copied from; a pooled array the worker copied from.
LANDING_SEGMENT, LANDING_COPIED, LANDING_BUFFER = "worker_segment", "copied_from_segment", "buffer"
LANDINGS = (LANDING_SEGMENT, LANDING_COPIED, LANDING_BUFFER)

#: Asks for worker shared memory to receive an image of this shape (H, W[, C] uint8) into.
Reserver = Callable[[tuple[int, ...]], ImageReservation | None]


#: Headers up to this size are remembered: a camera sends the same one with every frame, and numpy
#: parses it with ``ast.literal_eval`` (~0.15 ms per call). Larger ones are parsed every time.
_CACHED_HEADER_BYTES = 1024


def _read_npy_header(header: bytes) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """Shape, Fortran order and dtype of a whole ``.npy`` header (magic included); ValueError if bad."""
    stream = io.BytesIO(header)
    got_major, _minor = np.lib.format.read_magic(stream)
    reader = np.lib.format.read_array_header_1_0 if got_major == 1 else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = reader(stream)
    return tuple(int(n) for n in shape), bool(fortran), dtype


_read_npy_header_cached = functools.lru_cache(maxsize=32)(_read_npy_header)


class ImageSink:
    """Receives the bytes of one image file (``write``), then turns them into an ``ImageInput``.

    ``raw_shape`` set: the body is bare uint8 pixels of that shape (no header). ``reserve`` set:
    uint8 pixels go straight into a worker's shared-memory segment it hands out (the call then
    passes that segment on without a copy); without one, or when it has none, into a pooled array.
    Raises RunnerError 413 (2014) past ``limit`` bytes, 1002 for data that is not a usable image.
    """

    def __init__(self, field: str, label: str, limit: int, pool: BufferPool,
                 raw_shape: tuple[int, ...] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 reserve: Reserver | None = None) -> None:
        self.field = field
        self.label = label
        self.limit = limit
        self.pool = pool
        self.reserve = reserve
        #: The worker segment the pixels are written into (None: ``buffer`` is a pooled array).
        self.reservation: ImageReservation | None = None
        self.max_pixels = max_pixels
        self.size = 0
        self.kind = ""
        self._head = bytearray()  # first bytes (format sniffing, .npy header) or a whole PNG/JPEG
        self.buffer: np.ndarray | None = None  # flat target of .npy / raw data, from the pool
        self._shape: tuple[int, ...] = ()
        self._fortran = False
        self._filled = 0
        if raw_shape is not None:
            self.kind = "raw"
            self._start_array(raw_shape, np.dtype(np.uint8), False, "the raw image")

    # --- receiving --------------------------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        if not data:
            return
        self.size += len(data)
        if self.size > self.limit:
            raise too_large(f"the uploaded file {self.label!r}", self.limit, "max_image_bytes", field=self.field,
                            size=self.size)
        if self.buffer is not None:
            self._fill(memoryview(data))
            return
        self._head += data
        if not self.kind:
            if len(self._head) < _SNIFF_BYTES:
                return
            self.kind = sniff(bytes(self._head[:_SNIFF_BYTES]))
            if not self.kind:
                raise self._unrecognised()
        if self.kind == "npy":
            self._try_npy_header()

    def _try_npy_header(self) -> None:
        head = self._head
        if len(head) < 10:
            return
        major = head[6]
        prefix = 10 if major == 1 else 12
        if len(head) < prefix:
            return
        length = struct.unpack("<H", head[8:10])[0] if major == 1 else struct.unpack("<I", head[8:12])[0]
        if length > 65536 * 4:
            raise image_error(f"the .npy header of {self.label!r} is {length} bytes long; is it a .npy file?",
                              format="npy")
        if len(head) < prefix + length:
            return
        header = bytes(head[:prefix + length])
        try:
            shape, fortran, dtype = (_read_npy_header_cached if len(header) <= _CACHED_HEADER_BYTES
                                     else _read_npy_header)(header)
        except (ValueError, OSError) as exc:
            raise image_error(f"the .npy header could not be read ({exc})", format="npy") from exc
        rest = bytes(head[prefix + length:])
        self._head = bytearray()
        self._start_array(shape, dtype, fortran, "the .npy array")
        if rest:
            self._fill(memoryview(rest))

    def _start_array(self, shape: tuple[int, ...], dtype: Any, fortran: bool, what: str) -> None:
        check_array_header(shape, dtype, self.max_pixels, self.limit, what)
        self._shape, self._fortran = shape, fortran
        if self.reserve is not None and dtype == np.uint8 and not fortran:
            self.reservation = self.reserve(shape)
            if self.reservation is not None:
                self.buffer = self.reservation.pixels.reshape(-1)  # a view: bytes land in the segment
                return
        self.buffer = self.pool.take(int(np.prod(shape)))

    def _fill(self, view: memoryview) -> None:
        assert self.buffer is not None
        end = self._filled + len(view)
        if end > self.buffer.nbytes:
            raise image_error(f"{self.label!r} holds more bytes than its shape {list(self._shape)} needs "
                              f"({self.buffer.nbytes}); send exactly one array", format=self.kind or "npy")
        self.buffer[self._filled:end] = np.frombuffer(view, dtype=np.uint8)
        self._filled = end

    def unfilled(self) -> memoryview | None:
        """The memory a sized image's remaining bytes go to (for a reader that writes them itself,
        then calls ``wrote``); None while the size is unknown (PNG/JPEG, an incomplete .npy header)."""
        if self.buffer is None:
            return None
        return memoryview(self.buffer[self._filled:])  # type: ignore[arg-type]

    def wrote(self, nbytes: int) -> None:
        """``nbytes`` were written into ``unfilled()`` by someone else (the socket itself)."""
        assert self.buffer is not None and self._filled + nbytes <= self.buffer.nbytes
        self.size += nbytes
        self._filled += nbytes

    @property
    def bytes_missing(self) -> int:
        """Bytes still needed to fill a sized image (.npy past its header, raw pixels); 0 while the
        size is unknown (header not complete yet, PNG/JPEG) and once it is full."""
        return 0 if self.buffer is None else self.buffer.nbytes - self._filled

    # --- result -------------------------------------------------------------------------------------

    @property
    def needs_decode(self) -> bool:
        """True for PNG/JPEG: ``decode`` does CPU work and belongs on a thread."""
        return self.buffer is None

    def _unrecognised(self) -> RunnerError:
        head = bytes(self._head[:8])
        return image_error("the image data is not PNG, JPEG or NumPy .npy (unrecognised first bytes "
                           f"{head.hex()}); send one of those formats", first_bytes=head.hex())

    def image(self, *, color_space: str, input_order: str, camera_id: str, timestamp_ms: int | None) -> ImageInput:
        """The received image. For PNG/JPEG this decodes (CPU-heavy: call it on a thread)."""
        target = check_color_space(color_space)
        source = check_color_space(input_order)
        if self.buffer is None:
            if self.size == 0:
                raise image_error("no image data was sent")
            if self.kind in ("", "npy"):
                if not self.kind and sniff(bytes(self._head)) == "":
                    raise self._unrecognised()
                raise image_error(f"the .npy file {self.label!r} ended inside its header; is the file complete?",
                                  format="npy")
            return decode_image(bytes(self._head), color_space=target, camera_id=camera_id,
                                timestamp_ms=timestamp_ms, max_pixels=self.max_pixels, max_bytes=self.limit)
        if self._filled != self.buffer.nbytes:
            raise image_error(f"{self.label!r} ended after {self._filled} of {self.buffer.nbytes} pixel bytes; "
                              "is the file complete?", format=self.kind)
        arr = self.buffer.reshape(self._shape, order="F" if self._fortran else "C")
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        reservation = self.reservation
        if arr.ndim == 3 and source != target:
            arr = arr[:, :, ::-1]
            reservation = None  # the worker gets these reordered pixels copied, not the segment
        return ImageInput(array=arr, color_space=target, camera_id=camera_id, timestamp_ms=timestamp_ms,
                          reservation=reservation)

    def release(self) -> str | None:
        """Give the memory back (only once no call uses it any more): a reserved segment no call
        took over to its worker, a pooled array to the pool. Returns where the pixels had landed
        (a ``LANDINGS`` value; None: nothing was received into memory of ours)."""
        if self.reservation is not None:
            reservation, self.reservation, self.buffer = self.reservation, None, None
            return LANDING_COPIED if reservation.release() else LANDING_SEGMENT
        if self.buffer is not None:
            self.pool.give(self.buffer)
            self.buffer = None
            return LANDING_BUFFER
        return None


__all__ = ["LANDINGS", "ImageSink", "NPY_MAGIC", "Reserver"]
