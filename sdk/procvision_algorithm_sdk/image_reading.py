"""Reading an image a runner handed over (worker side): segments and the public SDK's files."""

from __future__ import annotations

import io
import mmap
import os
from typing import Any

import numpy as np

from .errors import ErrorCode
from .segment_format import (
    _COLOR_SPACES,
    _HEADER,
    FORMAT_VERSION,
    HEADER_SIZE,
    KIND_ENCODED,
    KIND_RAW,
    MAGIC,
    _error,
    _file_base,
    _segment_path,
)


def _decode(data: Any, what: str) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise _error(ErrorCode.IMAGE_LOAD_FAILED,
                     f"{what} holds encoded image bytes but pillow is not installed; add 'pillow' to "
                     "the algorithm's requirements") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise _error(ErrorCode.IMAGE_LOAD_FAILED, f"{what} could not be decoded: {exc}") from exc


def _color_space(image_meta: dict[str, Any]) -> str:
    raw = image_meta.get("color_space") or "RGB"
    cs = str(raw).upper()
    if cs not in _COLOR_SPACES:
        raise _error(ErrorCode.UNSUPPORTED_COLOR_SPACE,
                     f"unsupported color_space {raw!r}; expected RGB, BGR or Mono8")
    return cs


def _meta_size(image_meta: dict[str, Any]) -> tuple[int, int]:
    try:
        return int(image_meta.get("width") or 0), int(image_meta.get("height") or 0)
    except (TypeError, ValueError):
        raise _error(ErrorCode.IMAGE_LOAD_FAILED,
                     f"image_meta width/height must be integers, got {image_meta.get('width')!r}x"
                     f"{image_meta.get('height')!r}") from None


def _check_size(arr: np.ndarray, image_meta: dict[str, Any], what: str) -> None:
    width, height = _meta_size(image_meta)
    if (width and width != arr.shape[1]) or (height and height != arr.shape[0]):
        raise _error(ErrorCode.IMAGE_LOAD_FAILED,
                     f"{what} is {arr.shape[1]}x{arr.shape[0]} but image_meta says {width}x{height}")


def _to_rgb(arr: np.ndarray, color_space: str, what: str) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise _error(ErrorCode.IMAGE_LOAD_FAILED, f"{what} holds {arr.dtype} pixels, expected uint8")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise _error(ErrorCode.IMAGE_LOAD_FAILED, f"{what} has shape {arr.shape}, expected HxW, HxWx1 or HxWx3")
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if color_space == "BGR":
        # A contiguous copy: a reversed-stride view breaks OpenCV and other C extensions.
        return np.ascontiguousarray(arr[:, :, ::-1])
    return arr


def _read_segment(shared_mem_id: str, image_meta: dict[str, Any]) -> np.ndarray:
    path = _segment_path(shared_mem_id, None)
    color_space = _color_space(image_meta)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise _error(ErrorCode.SHARED_MEMORY_NOT_FOUND,
                     f"shared memory segment {shared_mem_id!r} not found in {os.path.dirname(path)}") from None
    except OSError as exc:
        raise _error(ErrorCode.SHARED_MEMORY_NOT_FOUND,
                     f"cannot open shared memory segment {shared_mem_id!r}: {exc}") from exc
    try:
        size = os.fstat(fd).st_size
        if size < HEADER_SIZE:
            raise _error(ErrorCode.IMAGE_LOAD_FAILED,
                         f"shared memory segment {shared_mem_id!r} is {size} bytes, too small for a header")
        # ACCESS_COPY = private copy-on-write mapping: the algorithm may write into the array
        # without touching the runner's pixels, and nothing is copied unless it does.
        mm = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    finally:
        os.close(fd)
    magic, version, kind, _, height, width, channels, length = _HEADER.unpack_from(mm, 0)
    what = f"shared memory segment {shared_mem_id!r}"
    if magic != MAGIC or version != FORMAT_VERSION:
        raise _error(ErrorCode.IMAGE_LOAD_FAILED, f"{what} has no valid header (magic {magic!r}, version {version})")
    if HEADER_SIZE + length > size:
        raise _error(ErrorCode.IMAGE_LOAD_FAILED,
                     f"{what} header declares {length} payload bytes but the segment holds {size - HEADER_SIZE}")
    if kind == KIND_ENCODED:
        arr = _decode(memoryview(mm)[HEADER_SIZE:HEADER_SIZE + length], what)
        _check_size(arr, image_meta, what)
        return arr
    if kind != KIND_RAW:
        raise _error(ErrorCode.IMAGE_LOAD_FAILED, f"{what} has unknown kind {kind}")
    if channels not in (1, 3) or height * width * channels != length or length == 0:
        raise _error(ErrorCode.IMAGE_LOAD_FAILED,
                     f"{what} header is inconsistent: {height}x{width}x{channels} vs {length} bytes")
    arr = np.frombuffer(mm, dtype=np.uint8, count=length, offset=HEADER_SIZE).reshape(height, width, channels)
    _check_size(arr, image_meta, what)
    return _to_rgb(arr, color_space, what)


def _read_file(shared_mem_id: str, image_meta: dict[str, Any]) -> np.ndarray:
    color_space = _color_space(image_meta)
    base = _file_base(shared_mem_id)
    npy_path, bin_path = base + ".npy", base + ".bin"
    if os.path.isfile(npy_path):
        what = f"image file {npy_path}"
        try:
            arr = np.load(npy_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise _error(ErrorCode.IMAGE_LOAD_FAILED, f"{what} could not be read: {exc}") from exc
        if not isinstance(arr, np.ndarray):
            raise _error(ErrorCode.IMAGE_LOAD_FAILED, f"{what} does not hold a single array")
        _check_size(arr, image_meta, what)
        return _to_rgb(arr, color_space, what)
    if os.path.isfile(bin_path):
        what = f"image file {bin_path}"
        with open(bin_path, "rb") as fh:
            data = fh.read()
        arr = _decode(data, what)
        _check_size(arr, image_meta, what)
        return arr
    raise _error(ErrorCode.SHARED_MEMORY_NOT_FOUND,
                 f"no image for shared memory id {shared_mem_id!r} (looked for {npy_path} and {bin_path})")
