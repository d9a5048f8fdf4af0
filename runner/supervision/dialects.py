"""The protocol dialects a worker can speak, and how images and call data reach each one.

Four kinds of worker exist in the field:

- ``procvision``: this project's SDK. Announces ``pv:`` capabilities; images go in POSIX shared
  memory segments (``procvision_algorithm_sdk.shared_memory.ImageSegment``).
- ``procvision-execute-only``: this project's SDK serving an algorithm written in the execute-only
  style (announces ``execute`` and ``pv:`` capabilities). Calls take the 0.3.x shape (current +
  guide image, ``step_desc``, ``guide_info``); both images go in POSIX shared memory segments.
- ``public-phase``: the public SDK 0.0.6/0.0.7 (phases info/pre/execute). Reads images from files
  ``<PROC_SHM_DIR>/<id>.npy`` (array) or ``<id>.bin`` (encoded bytes).
- ``public-execute-only``: the public SDK 0.3.x (announces ``execute``). One ``execute`` per call with
  a current and a guide image, read from the same kind of files.

The install smoke test and the routing layer use this module; its API is kept stable.
"""

from __future__ import annotations

import io
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from procvision_algorithm_sdk.errors import ErrorCode
from procvision_algorithm_sdk.shared_memory import SHM_DIR_ENV, ImageSegment, default_shm_dir
from runner.errors import RunnerError

from .segments import SegmentPool

#: Our SDK's capability for real POSIX shared memory images.
SHM_POSIX_CAPABILITY = "pv:shm-posix:v1"
#: Capability of our SDK's adapter: hello comes only after the algorithm loaded.
IMPORT_BEFORE_HELLO_CAPABILITY = "pv:import-before-hello:v1"
#: Capability of our SDK's adapter: pongs arrive while a call runs.
BUSY_PONG_CAPABILITY = "pv:busy-pong:v1"
PHASES = ("info", "pre", "execute")
COLOR_SPACES = ("RGB", "BGR")
#: Environment variables removed from a worker's environment: they would let the runner's own
#: Python setup (or a user's) leak into the algorithm's venv.
#: What a worker inherits of the daemon's environment: names, or prefixes ending in ``*``. Anything
#: else (the runner's token and settings, credentials, PYTHONPATH...) never reaches algorithm code;
#: ``worker_env_allow`` adds names for a site (never ``PROCVISION_*``, see ``_NEVER``).
ENV_ALLOW_LIST = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR", "TERM",
                  "CUDA_*", "NVIDIA_*", "LD_LIBRARY_PATH", "OMP_NUM_THREADS", "MKL_*", "OPENBLAS_*",
                  "OPENCV_*", "ORT_*", "TF_CPP_MIN_LOG_LEVEL")
#: Prefixes no allow-list entry can let through: the runner's own settings and the protocol's
#: variables (the runner sets the ones a worker needs).
_NEVER = ("PROCVISION_", "PROC_")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]+$")


class Dialect(StrEnum):
    """Which protocol variant a worker speaks (from its hello)."""

    PROCVISION = "procvision"
    PROCVISION_EXECUTE_ONLY = "procvision-execute-only"
    PUBLIC_PHASE = "public-phase"
    PUBLIC_EXECUTE_ONLY = "public-execute-only"

    @property
    def ours(self) -> bool:
        """Our SDK's adapter (``pv:`` capabilities, shared memory segments), in either style."""
        return self in (Dialect.PROCVISION, Dialect.PROCVISION_EXECUTE_ONLY)

    @property
    def execute_only(self) -> bool:
        """Calls take the execute-only shape: one ``execute`` with a current and a guide image."""
        return self in (Dialect.PUBLIC_EXECUTE_ONLY, Dialect.PROCVISION_EXECUTE_ONLY)


#: Dialect values (as stored in the registry) whose workers take execute-only calls.
EXECUTE_ONLY_VALUES = frozenset(d.value for d in Dialect if d.execute_only)


def detect_dialect(hello: Mapping[str, Any]) -> Dialect:
    """Tell the dialect from a worker's hello frame.

    ``execute`` among the capabilities marks the execute-only call shape and any ``pv:`` capability
    our SDK: both -> our SDK serving an execute-only algorithm; ``execute`` alone -> the public 0.3.x
    era; ``pv:`` alone -> our SDK (phase style); neither -> the public phase protocol (0.0.6/0.0.7).
    """
    raw = hello.get("capabilities")
    caps = [str(c) for c in raw] if isinstance(raw, list) else []
    ours = any(c.startswith("pv:") for c in caps)
    if "execute" in caps:
        return Dialect.PROCVISION_EXECUTE_ONLY if ours else Dialect.PUBLIC_EXECUTE_ONLY
    if ours:
        return Dialect.PROCVISION
    return Dialect.PUBLIC_PHASE


@dataclass
class ImageInput:
    """One image for a call: a decoded array (H x W or H x W x C, uint8) or encoded bytes (PNG/JPEG)."""

    array: np.ndarray | None = None
    encoded: bytes | None = None
    color_space: str = "RGB"
    camera_id: str = ""
    timestamp_ms: int | None = None


@dataclass
class CallRequest:
    """What the runner asks a worker to do, independent of the worker's dialect."""

    phase: str  # "info" | "pre" | "execute"
    step_index: int = 1
    pid: str = ""
    session_id: str | None = None
    session_context: dict[str, Any] = field(default_factory=dict)
    user_params: dict[str, Any] = field(default_factory=dict)
    image: ImageInput | None = None
    guide_image: ImageInput | None = None
    step_desc: str = ""
    guide_info: list[Any] = field(default_factory=list)
    end_session: bool = False


def _invalid(message: str, **details: Any) -> RunnerError:
    return RunnerError(ErrorCode.INVALID_PARAMS, message, **details)


def _check_image(image: ImageInput) -> None:
    if (image.array is None) == (image.encoded is None):
        raise _invalid("an image needs exactly one of 'array' (decoded pixels) or 'encoded' (PNG/JPEG bytes)")
    if image.color_space not in COLOR_SPACES:
        raise RunnerError(ErrorCode.UNSUPPORTED_COLOR_SPACE,
                          f"color space {image.color_space!r} is not supported; use one of {list(COLOR_SPACES)}")
    if image.array is not None:
        arr = image.array
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise _invalid(f"image array has shape {arr.shape}; expected H x W or H x W x 1/3/4")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise _invalid("image array is empty")


def _encoded_size(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded image bytes; the public adapters need both in the meta."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.width), int(img.height)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise RunnerError(ErrorCode.IMAGE_LOAD_FAILED, f"image bytes are not a readable image: {exc}") from exc


def posix_shm_dir() -> Path:
    """The folder the runner creates POSIX shared memory segments in (``PROC_SHM_POSIX_DIR`` or
    ``/dev/shm``). Workers are told this folder explicitly (``worker_environment``)."""
    return Path(default_shm_dir())


class ImageHandoff:
    """Puts a worker's call images where that worker's dialect reads them, and frees them after.

    One per worker process (a worker runs one call at a time). ``release_all`` runs after every call:
    no image id outlives its call (a used segment is renamed at once; its memory is reused for a
    later call if no worker holds it, else freed on a background thread). ``close`` runs when the
    worker crashes or stops and frees everything, stopping that thread.

    For our SDK's workers, raw images go into segments taken from a ``SegmentPool`` of pre-faulted
    spares, so a call costs one copy. Every call gets a fresh id; a segment's memory serves a later
    call only once the kernel proves no worker holds it any more (see ``segments``), so an array an
    algorithm kept never changes.
    """

    def __init__(self, dialect: Dialect, shm_dir: Path, posix_dir: Path | str | None = None,
                 spares: int = 0) -> None:
        self.dialect = dialect
        self.shm_dir = Path(shm_dir)
        self.posix_dir = Path(posix_dir) if posix_dir is not None else posix_shm_dir()
        self._spares = spares
        self._lock = threading.Lock()
        self._segments: list[ImageSegment] = []
        self._files: list[Path] = []
        self._pool: SegmentPool | None = None
        self._closed = False

    @property
    def uses_posix_shm(self) -> bool:
        return self.dialect.ours

    def held_ids(self) -> list[str]:
        """Ids of images currently held (for diagnostics and leak checks)."""
        with self._lock:
            return [str(seg.id) for seg in self._segments] + [p.stem for p in self._files]

    def put(self, image: ImageInput) -> tuple[str, dict[str, Any]]:
        """Publish ``image``; returns ``(shared_mem_id, image_meta)`` for the call frame."""
        _check_image(image)
        timestamp_ms = image.timestamp_ms if image.timestamp_ms is not None else int(time.time() * 1000)
        if self.uses_posix_shm:
            return self._put_segment(image, timestamp_ms)
        return self._put_file(image, timestamp_ms)

    def _segment_pool(self) -> SegmentPool | None:
        with self._lock:
            if self._pool is None and not self._closed and self._spares > 0:
                self._pool = SegmentPool(self.posix_dir, self._spares, name=f"pv-segments-{self.shm_dir.name}")
            return self._pool

    def _put_segment(self, image: ImageInput, timestamp_ms: int) -> tuple[str, dict[str, Any]]:
        posix_dir = str(self.posix_dir)
        try:
            if image.array is not None:
                try:
                    segment = self._put_array(image.array, posix_dir)
                except ValueError as exc:
                    raise _invalid(f"cannot pass this image to the worker: {exc}") from exc
            else:
                assert image.encoded is not None
                try:
                    segment = ImageSegment.create_encoded(image.encoded, posix_dir)
                except ValueError as exc:
                    raise RunnerError(ErrorCode.IMAGE_LOAD_FAILED,
                                      f"image bytes are not a readable image: {exc}") from exc
        except OSError as exc:
            raise RunnerError(ErrorCode.IMAGE_LOAD_FAILED,
                              f"could not create a shared memory segment for the image in {posix_dir}: {exc}; "
                              f"free space there or point {SHM_DIR_ENV} at a writable tmpfs folder",
                              shm_dir=posix_dir) from exc
        with self._lock:
            self._segments.append(segment)
        meta = segment.image_meta(color_space=image.color_space, camera_id=image.camera_id,
                                  timestamp_ms=timestamp_ms)
        return str(segment.id), dict(meta)

    def _put_array(self, array: np.ndarray, posix_dir: str) -> ImageSegment:
        arr = array[:, :, None] if array.ndim == 2 else array
        if arr.dtype != np.uint8 or arr.shape[2] not in (1, 3):
            # Let the SDK say what is wrong with it.
            return ImageSegment.write_array(arr, posix_dir)
        pool = self._segment_pool()
        segment = pool.take(*(int(n) for n in arr.shape)) if pool is not None else None
        if segment is None:
            return ImageSegment.write_array(arr, posix_dir)
        assert segment.array is not None
        try:
            segment.array[...] = arr
        except BaseException:
            assert pool is not None
            pool.retire([segment])  # the pool keeps a descriptor on each segment it hands out
            raise
        return segment

    def _put_file(self, image: ImageInput, timestamp_ms: int) -> tuple[str, dict[str, Any]]:
        # The id only uses [A-Za-z0-9._-], so the public adapters' name mangling leaves it unchanged.
        image_id = f"pvimg-{uuid.uuid4().hex}"
        assert _SAFE_ID.match(image_id)
        self.shm_dir.mkdir(parents=True, exist_ok=True)
        if image.array is not None:
            arr = image.array
            path = self.shm_dir / f"{image_id}.npy"
            height, width = int(arr.shape[0]), int(arr.shape[1])
            with self._lock:
                self._files.append(path)
            with open(path, "wb") as handle:
                np.save(handle, np.ascontiguousarray(arr), allow_pickle=False)
        else:
            assert image.encoded is not None
            width, height = _encoded_size(image.encoded)
            path = self.shm_dir / f"{image_id}.bin"
            with self._lock:
                self._files.append(path)
            path.write_bytes(image.encoded)
        meta = {"width": width, "height": height, "timestamp_ms": timestamp_ms,
                "camera_id": image.camera_id, "color_space": image.color_space}
        return image_id, meta

    def release_all(self) -> None:
        """Free every image this handoff holds. Safe to call more than once."""
        # The call thread and the crash handler may both release: the lock is held until the
        # segments are really gone, so neither returns while the other is still freeing them.
        with self._lock:
            segments, self._segments = self._segments, []
            files, self._files = self._files, []
            errors: list[str] = []
            if self._pool is not None:
                try:
                    self._pool.retire(segments)
                except OSError as exc:
                    errors.append(str(exc))
            else:
                for segment in segments:
                    try:
                        segment.unlink()
                    except OSError as exc:
                        errors.append(f"{segment.id}: {exc}")
            for path in files:
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    errors.append(f"{path}: {exc}")
        if errors:
            raise OSError("could not free call images: " + "; ".join(errors))

    def close(self) -> None:
        """Free every image and spare segment and stop the background thread (the worker stopped or
        died). Idempotent; later ``put`` calls still work but create their segments inline."""
        errors: list[str] = []
        try:
            self.release_all()
        except OSError as exc:
            errors.append(str(exc))
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            try:
                pool.close()
            except OSError as exc:
                errors.append(str(exc))
        if errors:
            raise OSError("; ".join(errors))

    @property
    def pool(self) -> SegmentPool | None:
        """The spare-segment pool (None until the first raw image, or after ``close``)."""
        return self._pool


def _phase_data(request: CallRequest, handoff: ImageHandoff, dialect: Dialect) -> dict[str, Any]:
    data: dict[str, Any] = {"phase": request.phase, "step_index": int(request.step_index), "pid": request.pid,
                            "user_params": dict(request.user_params)}
    if request.session_id is not None or request.session_context:
        data["session"] = {"id": request.session_id or "", "context": dict(request.session_context)}
    if request.image is not None:
        shm_id, meta = handoff.put(request.image)
        data["shared_mem_id"] = shm_id
        data["image_meta"] = meta
    else:
        data["shared_mem_id"] = ""
        data["image_meta"] = {}
    if dialect is Dialect.PROCVISION:
        # Our adapter keeps sessions alive between calls; this tells it to drop one.
        data["end_session"] = bool(request.end_session)
        if request.step_desc:
            data["step_desc"] = request.step_desc
        if request.guide_info:
            data["guide_info"] = list(request.guide_info)
    return data


def _execute_only_data(request: CallRequest, handoff: ImageHandoff) -> dict[str, Any]:
    if request.phase == "info" and handoff.dialect.ours:
        # Our adapter answers info for execute-only algorithms too (from get_info or the manifest).
        return {"phase": "info", "step_index": 0}
    if request.phase != "execute":
        raise _invalid(f"this algorithm is written in the execute-only style (public SDK 0.3.x), which has no "
                       f"{request.phase!r} phase; send only 'execute' calls to it", phase=request.phase)
    if request.image is None or request.guide_image is None:
        raise _invalid("execute-only algorithms (the public SDK 0.3.x style) need both the current image and a "
                       "guide image in every execute call")
    cur_id, cur_meta = handoff.put(request.image)
    guide_id, guide_meta = handoff.put(request.guide_image)
    return {"step_index": int(request.step_index), "step_desc": request.step_desc,
            "guide_info": list(request.guide_info), "cur_image_shm_id": cur_id, "cur_image_meta": cur_meta,
            "guide_image_shm_id": guide_id, "guide_image_meta": guide_meta}


def build_call_data(dialect: Dialect, request: CallRequest, handoff: ImageHandoff) -> dict[str, Any]:
    """The ``data`` of a ``call`` frame for ``request`` in ``dialect``; images go through ``handoff``.

    Raises RunnerError(INVALID_PARAMS) for an unknown phase, or for ``pre``/``info`` (or missing
    images) on execute-only workers. On error, images already put stay in ``handoff`` until
    ``release_all``.
    """
    if request.phase not in PHASES:
        raise _invalid(f"unknown phase {request.phase!r}; use one of {list(PHASES)}", phase=request.phase)
    if dialect.execute_only:
        return _execute_only_data(request, handoff)
    return _phase_data(request, handoff, dialect)


def _allowed(name: str, allow: Sequence[str]) -> bool:
    if name.startswith(_NEVER):
        return False
    return any(name.startswith(entry[:-1]) if entry.endswith("*") else name == entry for entry in allow)


def worker_environment(base: Mapping[str, str], cwd: Path, shm_dir: Path, max_frame_bytes: int,
                       posix_dir: Path | str | None = None, extra_allow: Sequence[str] = ()) -> dict[str, str]:
    """The environment of a worker process: the allow-listed part of ``base`` (``ENV_ALLOW_LIST``
    plus ``extra_allow``), plus what the adapter needs.

    ``PROC_SHM_POSIX_DIR`` is always set to the folder the runner writes segments to
    (``posix_dir``, default ``posix_shm_dir()``, the same default ``ImageHandoff`` uses), so the
    worker never looks in another one.
    """
    allow = (*ENV_ALLOW_LIST, *extra_allow)
    env = {k: v for k, v in base.items() if _allowed(k, allow)}
    env.update({
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
        "PROC_ALGO_ROOT": str(cwd),
        "PROC_SHM_DIR": str(shm_dir),
        SHM_DIR_ENV: str(posix_dir if posix_dir is not None else posix_shm_dir()),
        "PROC_MAX_FRAME_BYTES": str(int(max_frame_bytes)),
    })
    return env


__all__ = ["Dialect", "EXECUTE_ONLY_VALUES", "detect_dialect", "ImageInput", "CallRequest", "ImageHandoff",
           "build_call_data", "worker_environment", "ENV_ALLOW_LIST", "posix_shm_dir", "SHM_POSIX_CAPABILITY",
           "IMPORT_BEFORE_HELLO_CAPABILITY", "BUSY_PONG_CAPABILITY", "PHASES"]

