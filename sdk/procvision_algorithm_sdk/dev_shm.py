"""Development image ids (``dev-shm:...``) with the public SDK's semantics.

The public SDK's tools and its authors' unit tests store images under ids like ``dev-shm:s1:cur``
and rely on two behaviours kept here: an image written in this process is read back from memory
(the latest write wins), and a missing or unreadable image reads as a black image of the
``image_meta`` size. Images are also written as ``.npy``/``.bin`` files in ``$PROC_SHM_DIR`` so an
adapter process sees them. Ids the runner issues never come here (see ``shared_memory``).
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any, Callable

import numpy as np

from .logger import StructuredLogger
from .shared_memory import _file_base, _file_dir

#: Images written in this process, by id: the public SDK reads these first (latest write wins).
_DEV_STORE: dict[str, Any] = {}
_DEV_LOGGER = StructuredLogger(component="shared_memory")


def _dev_save(shared_mem_id: str, suffix: str, write: Callable[[str], None]) -> None:
    """Write the file other processes read; the other kind's file goes (the latest write wins).

    Like the public SDK, a failed file write leaves the in-process image in place and is not raised.
    """
    base = _file_base(shared_mem_id)
    try:
        os.makedirs(_file_dir(), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(base + (".bin" if suffix == ".npy" else ".npy"))
        write(base + suffix)
    except OSError as exc:
        _DEV_LOGGER.warning("could not write the development image file; it is readable in this process only",
                            shared_mem_id=shared_mem_id, reason=str(exc))


def dev_write_image_to_shared_memory(shared_mem_id: str, image_bytes: bytes) -> None:
    """Store encoded image bytes (JPEG/PNG) under ``shared_mem_id`` (public signature).

    Kept in this process and written as ``<id>.bin`` in ``$PROC_SHM_DIR`` for other processes (an
    adapter started by ``procvision-cli run``).
    """
    data = bytes(image_bytes)
    _DEV_STORE[shared_mem_id] = data

    def write(path: str) -> None:
        with open(path, "wb") as fh:
            fh.write(data)

    _dev_save(shared_mem_id, ".bin", write)


def dev_clear_shared_memory(shared_mem_id: str) -> None:
    """Forget the image stored under ``shared_mem_id`` in this process and remove its files."""
    _DEV_STORE.pop(shared_mem_id, None)
    base = _file_base(shared_mem_id)
    for suffix in (".npy", ".bin"):
        with contextlib.suppress(OSError):
            os.unlink(base + suffix)


def _dev_array(data: Any, color_space: str) -> np.ndarray | None:
    """``data`` (array or encoded bytes) as H x W x 3 uint8 RGB, or None if it is not an image."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            from PIL import Image

            with Image.open(io.BytesIO(bytes(data))) as img:
                return np.asarray(img.convert("RGB"))
        except Exception:  # noqa: BLE001 - the public SDK's contract: unreadable bytes read as black
            return None
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = np.stack([arr, arr, arr], axis=-1)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.ndim != 3 or arr.shape[2] != 3:
        return None
    if color_space == "BGR":
        arr = np.ascontiguousarray(arr[:, :, ::-1])
    try:
        return arr.astype(np.uint8, copy=False)
    except (TypeError, ValueError):
        return None


def _read_dev_file(shared_mem_id: str, color_space: str) -> np.ndarray | None:
    base = _file_base(shared_mem_id)
    try:
        if os.path.isfile(base + ".npy"):
            return _dev_array(np.load(base + ".npy", allow_pickle=False), color_space)
        if os.path.isfile(base + ".bin"):
            with open(base + ".bin", "rb") as fh:
                return _dev_array(fh.read(), color_space)
    except (OSError, ValueError):
        return None
    return None


def read_dev(shared_mem_id: str, image_meta: dict[str, Any]) -> np.ndarray | None:
    """A development id, read as the public SDK does: the image written in this process, else its
    file; a missing or unreadable image is a black ``height x width`` image; no size gives None."""
    try:
        width, height = int(image_meta.get("width") or 0), int(image_meta.get("height") or 0)
    except (TypeError, ValueError):
        return None
    if width <= 0 or height <= 0:
        return None
    color_space = str(image_meta.get("color_space") or "RGB").upper()
    data = _DEV_STORE.get(shared_mem_id)
    arr = _dev_array(data, color_space) if data is not None else None
    if arr is None:
        arr = _read_dev_file(shared_mem_id, color_space)
    if arr is None:
        _DEV_LOGGER.warning("no readable image for this development id; using a black image as the public "
                            "SDK does", shared_mem_id=shared_mem_id, width=width, height=height)
        return np.zeros((height, width, 3), dtype=np.uint8)
    return arr


def write_dev_array(shared_mem_id: str, image_array: Any) -> None:
    """``write_image_array_to_shared_memory`` for a development id: any array, converted on read."""
    arr = np.asarray(image_array)
    _DEV_STORE[shared_mem_id] = arr
    _dev_save(shared_mem_id, ".npy", lambda path: np.save(path, arr, allow_pickle=False))
