"""Images handed from the runner to a worker through real OS shared memory.

The runner (owner) creates a segment per image as a file under ``/dev/shm`` (tmpfs: the pages
live in RAM, nothing touches a disk) and the worker maps it. Plain ``os.open`` + ``mmap`` is used
instead of ``multiprocessing.shared_memory`` on purpose: before Python 3.13 that module registers
every attached segment with a resource tracker, which unlinks the *owner's* segment when a
reader process exits.

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
in ``$PROC_SHM_DIR``), so images written by tools built on the public SDK still load.

Development ids (``dev-shm:...``, what the public SDK's tools and authors' unit tests use) behave as
in the public SDK: a missing or unreadable image reads as a black image of the ``image_meta`` size
(with a warning on stderr), and no size gives None. Every other id is strict: a missing image is an
error (1007), never a black picture, so nothing the runner hands over can silently go missing.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import re
import struct
import sys
import tempfile
import time
import uuid
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


# --- reading (worker side) ---------------------------------------------------------------------

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


def _file_dir() -> str:
    return os.environ.get(FILE_DIR_ENV) or os.path.join(tempfile.gettempdir(), "procvision_dev_shm")


def _file_base(shared_mem_id: str) -> str:
    return os.path.join(_file_dir(), _UNSAFE_CHARS.sub("_", shared_mem_id))


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
           "default_shm_dir", "SHM_PREFIX", "DEV_PREFIX", "HEADER_SIZE"]
