"""The segment format both sides share: ids, the header, folders and the checks of an image array.

Segment layout (little-endian), followed by the payload at offset ``HEADER_SIZE``::

    magic     4s   b"PVSH"
    version   u16  1
    kind      u8   1 = raw uint8 pixels (H x W x C, row-major), 2 = encoded bytes (JPEG/PNG)
    reserved  u8   0
    height    u32
    width     u32
    channels  u32  1 or 3 for raw; 0 for encoded
    length    u64  payload length in bytes
    padding   to 64 bytes

Ids not starting with ``pvshm-`` use the public SDK's development scheme (``.npy``/``.bin`` files
in ``$PROC_SHM_DIR``).
"""

from __future__ import annotations

import os
import re
import struct
import sys
import tempfile
from typing import Any

import numpy as np

from .errors import ErrorCode, ProcVisionError

SHM_PREFIX = "pvshm-"
#: Ids with the public SDK's lenient development semantics.
DEV_PREFIX = "dev-shm:"
MAGIC = b"PVSH"
FORMAT_VERSION = 1
KIND_RAW = 1
KIND_ENCODED = 2
_HEADER = struct.Struct("<4sHBBIIIQ")
HEADER_SIZE = 64
SHM_DIR_ENV = "PROC_SHM_POSIX_DIR"
#: Segment files are readable by their group: a sandboxed worker runs as another user, and the runner
#: gives its private segment folder that user's group (setgid), so only that worker can map them.
SEGMENT_MODE = 0o640
FILE_DIR_ENV = "PROC_SHM_DIR"

_SEGMENT_ID = re.compile(r"pvshm-[A-Za-z0-9._-]{1,200}")  # fullmatch: no trailing newline
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_MONO_SPACES = {"MONO", "MONO8", "GRAY", "GREY", "L"}
_COLOR_SPACES = {"RGB", "BGR"} | _MONO_SPACES


def default_shm_dir() -> str:
    """Where segments live: ``$PROC_SHM_POSIX_DIR`` if set, else ``/dev/shm`` (tmp dir elsewhere)."""
    override = os.environ.get(SHM_DIR_ENV)
    if override:
        return override
    if sys.platform.startswith("linux") and os.path.isdir("/dev/shm"):
        return "/dev/shm"
    return tempfile.gettempdir()


def _error(code: ErrorCode, message: str) -> ProcVisionError:
    return ProcVisionError(message, code.value)


def _segment_path(shared_mem_id: str, shm_dir: str | None) -> str:
    if not _SEGMENT_ID.fullmatch(shared_mem_id) or shared_mem_id in (".", ".."):
        raise _error(ErrorCode.SHARED_MEMORY_NOT_FOUND,
                     f"invalid shared memory id {shared_mem_id!r}: expected 'pvshm-' followed by "
                     "letters, digits, '.', '_' or '-'")
    return os.path.join(shm_dir or default_shm_dir(), shared_mem_id)


def _as_uint8_image(array: Any) -> np.ndarray:
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise ValueError(f"image must be HxW, HxWx1 or HxWx3, got shape {arr.shape}")
    if arr.shape[0] <= 0 or arr.shape[1] <= 0:
        raise ValueError(f"image must not be empty, got shape {arr.shape}")
    return arr


def _file_dir() -> str:
    return os.environ.get(FILE_DIR_ENV) or os.path.join(tempfile.gettempdir(), "procvision_dev_shm")


def _file_base(shared_mem_id: str) -> str:
    return os.path.join(_file_dir(), _UNSAFE_CHARS.sub("_", shared_mem_id))
