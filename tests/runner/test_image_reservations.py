"""A worker's ImageHandoff reserves a pre-faulted segment for an image still arriving: the receiver
writes the pixels into it and the call passes that very segment on (no copy). Any other use (another
worker's handoff, reordered pixels) copies; a reservation no call took over, or one outstanding when
the worker stops, is given back and leaves no file behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from procvision_algorithm_sdk import read_image_from_shared_memory
from runner.supervision.dialects import Dialect, ImageHandoff, ImageInput
from runner.supervision.dialects.reservation import ImageReservation
from tests.runner.supervision_support import private_segment_folder
from tests.support.waiting import wait_until


@pytest.fixture
def shm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from private_segment_folder(tmp_path, monkeypatch, "pv-test-reservations")


def _pixels(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _reserve(handoff: ImageHandoff, shape: tuple[int, int, int], worker_index: int = 0) -> ImageReservation:
    """A reservation, once the handoff's pool has a spare of this shape (the first take makes them)."""
    def attempt() -> ImageReservation | None:
        reservation = handoff.reserve(*shape, worker_index=worker_index)
        if reservation is None:
            handoff.release_all()  # the pool makes spares between calls
        return reservation

    return wait_until(attempt, what="a reserved segment")


def _named(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.startswith("pvshm-")}


def test_a_call_passes_on_the_segment_its_image_was_received_into(shm: Path) -> None:
    handoff = ImageHandoff(Dialect.PROCVISION, shm / "files", spares=2)
    try:
        reservation = _reserve(handoff, (30, 40, 3), worker_index=1)
        assert reservation.worker_index == 1 and handoff.reserved_count == 1
        pixels = _pixels(1, (30, 40, 3))
        reservation.pixels.reshape(-1)[:] = pixels.reshape(-1)  # what the streaming receiver does
        shm_id, meta = handoff.put(ImageInput(array=reservation.pixels, reservation=reservation))
        assert shm_id == reservation.segment.id  # the same segment: no copy was made
        assert handoff.reserved_count == 0
        assert np.array_equal(read_image_from_shared_memory(shm_id, meta), pixels)
        handoff.release_all()
        assert not (shm / shm_id).exists()
        assert reservation.release() is False  # taken over by the call: nothing left to give back
    finally:
        handoff.close()
    assert _named(shm) == set()


def test_a_grey_image_uses_a_one_channel_segment(shm: Path) -> None:
    handoff = ImageHandoff(Dialect.PROCVISION, shm / "files", spares=1)
    try:
        reservation = _reserve(handoff, (12, 9, 1))
        grey = _pixels(2, (12, 9))
        view = reservation.pixels.reshape(12, 9)
        view[...] = grey
        shm_id, meta = handoff.put(ImageInput(array=view, reservation=reservation))
        assert shm_id == reservation.segment.id and meta["color_space"] == "Mono8"
        assert np.array_equal(read_image_from_shared_memory(shm_id, meta)[:, :, 0], grey)
        handoff.release_all()
    finally:
        handoff.close()


def test_other_workers_and_reordered_pixels_copy_and_the_reservation_is_given_back(shm: Path) -> None:
    owner = ImageHandoff(Dialect.PROCVISION, shm / "files-a", spares=2)
    other = ImageHandoff(Dialect.PROCVISION, shm / "files-b", spares=2)
    try:
        reservation = _reserve(owner, (20, 30, 3))
        pixels = _pixels(3, (20, 30, 3))
        reservation.pixels[...] = pixels
        shm_id, meta = other.put(ImageInput(array=reservation.pixels, reservation=reservation))
        assert shm_id != reservation.segment.id
        assert np.array_equal(read_image_from_shared_memory(shm_id, meta), pixels)
        other.release_all()
        flipped = reservation.pixels[:, :, ::-1]
        shm_id, meta = owner.put(ImageInput(array=flipped, reservation=reservation))
        assert shm_id != reservation.segment.id
        assert np.array_equal(read_image_from_shared_memory(shm_id, meta), flipped)
        owner.release_all()
        assert owner.reserved_count == 1
        assert reservation.release() is True and owner.reserved_count == 0
        assert reservation.release() is False  # idempotent
    finally:
        owner.close()
        other.close()
    assert _named(shm) == set()


def test_a_reservation_outstanding_when_the_worker_stops_is_freed(shm: Path) -> None:
    handoff = ImageHandoff(Dialect.PROCVISION, shm / "files", spares=2)
    reservation = _reserve(handoff, (16, 16, 3))
    view = reservation.pixels
    handoff.close()
    assert _named(shm) == set()
    view[...] = 7  # a receiver still writing meanwhile writes into memory that stays mapped for it
    assert reservation.release() is False
    assert handoff.reserve(16, 16, 3, worker_index=0) is None  # a stopped worker reserves nothing


def test_workers_reading_files_reserve_nothing(shm: Path) -> None:
    handoff = ImageHandoff(Dialect.PUBLIC_PHASE, shm / "files", spares=2)
    try:
        assert handoff.reserve(16, 16, 3, worker_index=0) is None
    finally:
        handoff.close()


def test_a_handoff_told_the_image_size_has_segments_ready_before_its_first_call(shm: Path) -> None:
    handoff = ImageHandoff(Dialect.PROCVISION, shm / "files", spares=2)
    try:
        handoff.expect(20, 24, 3)
        pool = handoff.pool
        assert pool is not None
        wait_until(lambda: pool.spare_count == 2, what="pre-faulted spares")
        reservation = handoff.reserve(20, 24, 3, worker_index=0)  # the very first take finds one
        assert reservation is not None
        assert reservation.release() is True
    finally:
        handoff.close()
    assert _named(shm) == set()
