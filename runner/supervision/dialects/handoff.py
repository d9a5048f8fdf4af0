"""The image handoff: puts a worker's call images where its dialect reads them, and frees them after.

Our SDK's workers map POSIX shared memory segments; the public SDK's read ``<PROC_SHM_DIR>/<id>.npy``
(array) or ``<id>.bin`` (encoded bytes). Which one a worker gets is its dialect's ``image_transport``.
"""

from __future__ import annotations

import io
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from procvision_algorithm_sdk.errors import ErrorCode
from procvision_algorithm_sdk.shared_memory import SHM_DIR_ENV, ImageSegment
from runner.errors import RunnerError

from ..segments import SegmentPool
from .base import Dialect, ImageTransport
from .environment import posix_shm_dir
from .lookup import strategy_for
from .requests import ImageInput, check_image, invalid
from .reservation import ImageReservation

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]+$")


def _encoded_size(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded image bytes; the public adapters need both in the meta."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.width), int(img.height)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise RunnerError(ErrorCode.IMAGE_LOAD_FAILED, f"image bytes are not a readable image: {exc}") from exc


def _same_pixels(array: np.ndarray, pixels: np.ndarray) -> bool:
    """Whether ``array`` is exactly ``pixels`` (same memory, same order), perhaps without its channel axis."""
    return (array.dtype == pixels.dtype and array.size == pixels.size and array.flags.c_contiguous
            and array.__array_interface__["data"][0] == pixels.__array_interface__["data"][0])


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
        self._reserved: dict[str, ImageSegment] = {}  # handed out by reserve, not taken by a call yet
        self._pool: SegmentPool | None = None
        self._closed = False

    @property
    def uses_posix_shm(self) -> bool:
        """Whether this worker's dialect takes images in POSIX shared memory segments (else files)."""
        return strategy_for(self.dialect).image_transport is ImageTransport.POSIX_SHM

    def held_ids(self) -> list[str]:
        """Ids of images currently held (for diagnostics and leak checks)."""
        with self._lock:
            return [str(seg.id) for seg in self._segments] + [p.stem for p in self._files]

    def reserve(self, height: int, width: int, channels: int, worker_index: int) -> ImageReservation | None:
        """A pre-faulted segment of this shape for an image not received yet (the receiver writes its
        pixels), or None: this worker takes files, or no spare segment is ready (the caller then
        receives into memory of its own and the call copies it)."""
        if not self.uses_posix_shm or channels not in (1, 3):
            return None
        pool = self._segment_pool()
        segment = pool.take(height, width, channels) if pool is not None else None
        if segment is None:
            return None
        pixels = segment.pinned_pixels()
        with self._lock:
            if not self._closed:
                self._reserved[segment.id] = segment
                return ImageReservation(segment, worker_index, self, pixels)
        assert pool is not None
        pool.retire([segment])  # closed meanwhile (the worker stopped): nobody will use it
        return None

    def expect(self, height: int, width: int, channels: int) -> None:
        """Pre-fault spare segments for images of this shape now (a no-op for workers reading files)."""
        if not self.uses_posix_shm or channels not in (1, 3):
            return
        pool = self._segment_pool()
        if pool is not None:
            pool.expect(height, width, channels)

    def unreserve(self, segment: ImageSegment) -> bool:
        """Give back a reserved segment no call took over (a no-op once one did, or after ``close``).
        Returns whether it was still reserved (False: a call passed it on, or the worker stopped)."""
        with self._lock:
            held = self._reserved.pop(segment.id, None)
            pool = self._pool
        if held is None:
            return False
        if pool is not None:
            pool.retire([held])
        else:
            held.unlink()
        return True

    @property
    def reserved_count(self) -> int:
        """Reservations handed out and not taken over or given back yet."""
        with self._lock:
            return len(self._reserved)

    def put(self, image: ImageInput) -> tuple[str, dict[str, Any]]:
        """Publish ``image``; returns ``(shared_mem_id, image_meta)`` for the call frame."""
        check_image(image)
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
            adopted = self._adopt(image)
            if adopted is not None:
                segment = adopted
            elif image.array is not None:
                try:
                    segment = self._put_array(image.array, posix_dir)
                except ValueError as exc:
                    raise invalid(f"cannot pass this image to the worker: {exc}") from exc
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

    def _adopt(self, image: ImageInput) -> ImageSegment | None:
        """The reserved segment ``image``'s pixels were received into, if it is one of ours: the
        call takes it over as it is (released with the call's other images). None: copy."""
        reservation = image.reservation
        if reservation is None or reservation.owner is not self or image.array is None:
            return None
        segment = reservation.segment
        with self._lock:
            if self._reserved.get(segment.id) is not segment:
                return None
            if not _same_pixels(image.array, reservation.pixels):
                return None  # a view of other pixels (e.g. channels reordered): that is copied instead
            del self._reserved[segment.id]
        return segment

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
            if self._closed:
                # The worker is gone: reservations nobody will take over are freed with the rest
                # (the receiver's views keep the memory it may still be writing mapped).
                segments += list(self._reserved.values())
                self._reserved.clear()
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
        with self._lock:
            self._closed = True
        try:
            self.release_all()
        except OSError as exc:
            errors.append(str(exc))
        with self._lock:
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
