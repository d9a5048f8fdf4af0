"""Small copies of call images: taken in the execute path (cheap), encoded to PNG only when asked."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

__all__ = ["Thumbnail", "take_thumbnail"]


@dataclass(frozen=True)
class Thumbnail:
    """A strided copy of an image (at most ``max_width`` wide) and the size of the original."""

    pixels: np.ndarray
    color_space: str
    source_width: int
    source_height: int

    def png(self) -> bytes:
        """PNG bytes (RGB or grey). Costs a few milliseconds: call it off the event loop."""
        from PIL import Image

        arr = self.pixels
        if arr.ndim == 3 and self.color_space == "BGR":
            arr = arr[:, :, ::-1]
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(arr)).save(buf, "PNG", compress_level=1)
        return buf.getvalue()


def take_thumbnail(array: np.ndarray, color_space: str, max_width: int) -> Thumbnail | None:
    """Every n-th pixel of ``array`` so the copy is at most ``max_width`` wide: a copy of a few
    thousand pixels, whatever the camera's resolution (no resampling in the call path)."""
    if array.ndim not in (2, 3) or array.shape[0] == 0 or array.shape[1] == 0:
        return None
    if array.ndim == 3 and array.shape[2] not in (1, 3, 4):
        return None
    height, width = int(array.shape[0]), int(array.shape[1])
    step = max(1, -(-width // max_width))
    if array.ndim == 2 or array.shape[2] == 1:
        small = np.array(array[::step, ::step] if array.ndim == 2 else array[::step, ::step, 0], copy=True)
        return Thumbnail(small, color_space, width, height)
    # One 2-D strided copy per channel: numpy copies a 3-byte pixel stride several times slower
    # than three single-byte planes (measured: benchmarks/console_call_log.py).
    view = array[::step, ::step]
    small = np.empty((view.shape[0], view.shape[1], 3), dtype=array.dtype)
    for channel in range(3):
        small[:, :, channel] = view[:, :, channel]
    return Thumbnail(small, color_space, width, height)
