"""Images handed from the runner to a worker through real OS shared memory.

The runner (owner) creates a segment per image as a file under ``/dev/shm`` (tmpfs: the pages
live in RAM, nothing touches a disk) and the worker maps it. Plain ``os.open`` + ``mmap`` is used
instead of ``multiprocessing.shared_memory`` on purpose: before Python 3.13 that module registers
every attached segment with a resource tracker, which unlinks the *owner's* segment when a
reader process exits.

The segment layout (a 64-byte header, then the payload) is described in ``segment_format.py``.

Ids not starting with ``pvshm-`` use the public SDK's development scheme (``.npy``/``.bin`` files
in ``$PROC_SHM_DIR``), so images written by tools built on the public SDK still load.

Development ids (``dev-shm:...``, what the public SDK's tools and authors' unit tests use) behave as
in the public SDK: a missing or unreadable image reads as a black image of the ``image_meta`` size
(with a warning on stderr), and no size gives None. Every other id is strict: a missing image is an
error (1007), never a black picture, so nothing the runner hands over can silently go missing.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import numpy as np

from .errors import ErrorCode
from .image_reading import _read_file, _read_segment
from .image_segment import ImageSegment
from .segment_format import (
    DEV_PREFIX,
    FILE_DIR_ENV,
    HEADER_SIZE,
    SEGMENT_MODE,
    SHM_DIR_ENV,
    SHM_PREFIX,
    _as_uint8_image,
    _error,
    _file_base,
    _file_dir,  # noqa: F401  (dev_shm and tests read it here)
    _segment_path,
    default_shm_dir,
)


def read_image_from_shared_memory(shared_mem_id: str, image_meta: dict[str, Any]) -> np.ndarray | None:
    """The image behind ``shared_mem_id`` as an H x W x 3 uint8 RGB array.

    Development ids (``dev-shm:...``) follow the public SDK instead: see ``_read_dev``.

    Raw RGB segments are returned without copying the pixels (a private copy-on-write mapping:
    writing to the array never changes the runner's image). BGR data is reordered to RGB, mono data
    expanded to three channels, encoded JPEG/PNG decoded with pillow. Raises ProcVisionError with
    1007 (no such segment or file), 1002 (unreadable, or size differs from ``image_meta``) or
    1008 (unknown ``color_space``); a missing image is never replaced by a blank one.
    """
    if not isinstance(shared_mem_id, str) or not shared_mem_id:
        raise _error(ErrorCode.SHARED_MEMORY_NOT_FOUND, "shared_mem_id is empty")
    meta = image_meta if isinstance(image_meta, dict) else {}
    if shared_mem_id.startswith(DEV_PREFIX):
        from .dev_shm import read_dev

        return read_dev(shared_mem_id, meta)
    if shared_mem_id.startswith(SHM_PREFIX):
        return _read_segment(shared_mem_id, meta)
    return _read_file(shared_mem_id, meta)


def write_image_array_to_shared_memory(shared_mem_id: str, image_array: Any) -> None:
    """Store an image under ``shared_mem_id`` (development and test helper, public signature).

    A ``pvshm-`` id creates (or replaces) a segment of that name in the shm directory, which the
    caller later removes with ``ImageSegment``/``cleanup_stale_segments`` or ``os.unlink``.
    Other ids write the public SDK's ``.npy`` file.
    """
    if shared_mem_id.startswith(DEV_PREFIX):
        from .dev_shm import write_dev_array

        write_dev_array(shared_mem_id, image_array)
        return
    arr = _as_uint8_image(image_array)
    if shared_mem_id.startswith(SHM_PREFIX):
        path = _segment_path(shared_mem_id, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        seg = ImageSegment.create_array(arr, segment_id=shared_mem_id)
        seg.close()
        return
    os.makedirs(_file_dir(), exist_ok=True)
    np.save(_file_base(shared_mem_id) + ".npy", arr)


def cleanup_stale_segments(shm_dir: str | None = None, older_than_s: float = 0.0) -> int:
    """Remove ``pvshm-`` segments last modified more than ``older_than_s`` seconds ago.

    The runner calls this at start to reclaim segments a crashed predecessor left. Returns how many
    were removed.
    """
    directory = shm_dir or default_shm_dir()
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for name in names:
        if not name.startswith(SHM_PREFIX):
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
            if st.st_mtime <= cutoff and os.path.isfile(path):
                os.unlink(path)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


# The public SDK's development helpers live in this module's namespace too.
from .dev_shm import dev_clear_shared_memory, dev_write_image_to_shared_memory  # noqa: E402

__all__ = ["ImageSegment", "read_image_from_shared_memory", "write_image_array_to_shared_memory",
           "dev_write_image_to_shared_memory", "dev_clear_shared_memory", "cleanup_stale_segments",
           "default_shm_dir", "SHM_PREFIX", "DEV_PREFIX", "HEADER_SIZE", "SEGMENT_MODE", "SHM_DIR_ENV", "FILE_DIR_ENV"]
