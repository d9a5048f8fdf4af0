"""The per-worker segment pool and the shared memory image handoff, on real tmpfs segments and real workers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from procvision_algorithm_sdk import read_image_from_shared_memory
from procvision_algorithm_sdk.shared_memory import HEADER_SIZE, SHM_DIR_ENV
from runner.errors import RunnerError
from runner.supervision import CallRequest, ImageInput, State, Supervisor
from runner.supervision.dialects import Dialect, ImageHandoff, posix_shm_dir, worker_environment
from runner.supervision.segments import MAX_BACKLOG, SegmentPool, remove_stale_segments
from tests.runner.supervision_support import ALGO, fast_settings, private_segment_folder
from tests.support.deploy import Deployer, deployer  # noqa: F401 - fixture
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def shm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private segment folder on tmpfs (when there is one), used by this process and its workers."""
    yield from private_segment_folder(tmp_path, monkeypatch, "pv-test-segments")


def image(seed: int, shape: tuple[int, ...] = (40, 60, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- SegmentPool ---------------------------------------------------------------------------------

def test_pool_prepares_spares_of_the_last_shape_and_hands_out_each_once(shm: Path) -> None:
    pool = SegmentPool(shm, spares=2)
    try:
        assert pool.take(40, 60, 3) is None  # nothing ready yet: the caller creates one inline
        # Spares are made between calls; only a pool with none at all makes one during a call.
        wait_until(lambda: pool.spare_count == 1, what="the first spare")
        pool.retire([])  # the call ended
        wait_until(lambda: pool.spare_count == 2, what="two spares")
        assert files(shm) == []  # spares have no name until a call takes one
        first = pool.take(40, 60, 3)
        assert first is not None and first.array is not None and first.array.shape == (40, 60, 3)
        assert files(shm) == [first.id] and first.path == str(shm / first.id)
        assert (shm / first.id).stat().st_size == HEADER_SIZE + 40 * 60 * 3
        pixels = image(1)
        first.array[...] = pixels
        # A worker reads the header the pool wrote and the pixels copied in.
        out = read_image_from_shared_memory(first.id, first.image_meta())
        assert np.array_equal(out, pixels)
        second = pool.take(40, 60, 3)
        assert second is not None and second.id != first.id
        # The worker still maps the first image when the call ends.
        held = read_image_from_shared_memory(first.id, first.image_meta())
        del out  # dropped: only ``held`` maps the first segment now
        pool.retire([first, second])
        # The call ids are gone at once. Nobody else holds the second segment: it is a spare again,
        # parked under a fresh id. The first is still mapped: it is freed in the background.
        assert not (shm / first.id).exists() and not (shm / second.id).exists()
        assert pool.recycled == 1 and pool.refused == 1
        parked = files(shm)
        assert len(parked) == 1 and parked[0] not in (first.id, second.id)
        wait_until(lambda: pool.backlog == 0 and pool.spare_count == 2, what="used segment freed, spares refilled")
        assert np.array_equal(held, pixels)  # a mapping the worker kept stays valid
        # Overwriting every spare never reaches the kept mapping.
        for _ in range(2):
            seg = pool.take(40, 60, 3)
            assert seg is not None and seg.array is not None
            seg.array[...] = 255 - pixels
            pool.retire([seg])
        assert pool.recycled == 3 and np.array_equal(held, pixels)
    finally:
        pool.close()
    assert files(shm) == []


def test_pool_drops_spares_of_an_old_shape(shm: Path) -> None:
    pool = SegmentPool(shm, spares=1)
    try:
        assert pool.take(10, 10, 3) is None
        pool.retire([])
        wait_until(lambda: pool.spare_count == 1, what="spare of the first shape")
        assert pool.take(20, 30, 1) is None  # a different size: the old spare is no use
        pool.retire([])
        wait_until(lambda: pool.spare_count == 1 and pool.backlog == 0, what="spare of the new shape only")
        seg = pool.take(20, 30, 1)
        assert seg is not None and seg.array is not None and seg.array.shape == (20, 30, 1)
        assert (shm / seg.id).stat().st_size == HEADER_SIZE + 20 * 30
        pool.retire([seg])
    finally:
        pool.close()


def test_close_stops_the_thread_and_removes_everything(shm: Path) -> None:
    pool = SegmentPool(shm, spares=2)
    assert pool.take(16, 16, 3) is None
    pool.retire([])
    wait_until(lambda: pool.spare_count == 2, what="spares")
    taken = pool.take(16, 16, 3)
    assert taken is not None and pool.thread is not None
    pool.close()
    assert not pool.thread.is_alive()
    assert files(shm) == [taken.id]  # a segment in use stays until it is handed back
    assert pool.take(16, 16, 3) is None  # closed: callers fall back to inline segments
    pool.retire([taken])  # after close, freed inline
    assert files(shm) == []
    pool.close()  # idempotent


def test_backlog_is_bounded_when_the_thread_falls_behind(shm: Path) -> None:
    from procvision_algorithm_sdk.shared_memory import ImageSegment

    pool = SegmentPool(shm, spares=1)
    try:
        assert pool.take(8, 8, 3) is None
        segments = [ImageSegment.write_array(image(i, (8, 8, 3)), str(shm)) for i in range(3 * MAX_BACKLOG)]
        pool.retire(segments)
        assert pool.backlog <= MAX_BACKLOG
        assert files(shm) == []
        wait_until(lambda: pool.backlog == 0, what="backlog freed")
    finally:
        pool.close()


@pytest.mark.parametrize("ending", ["exit", "sigkill"])
def test_a_runner_that_ends_without_closing_leaves_no_segment(shm: Path, ending: str) -> None:
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from runner.supervision.segments import SegmentPool
        from tests.support.waiting import wait_until
        pool = SegmentPool({str(shm)!r}, spares=2)
        pool.take(32, 32, 3)
        pool.retire([])
        wait_until(lambda: pool.spare_count >= 2, 30.0, "two spare segments")
        used = pool.take(32, 32, 3)
        pool.retire([used])  # nobody else holds it: parked under a new name as a spare again
        in_call = pool.take(32, 32, 3)  # a call is running when the process ends
        print(pool.recycled, in_call is not None, flush=True)
        if {ending!r} == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == (0 if ending == "exit" else -9), proc.stderr
    assert proc.stdout.split() == ["1", "True"]
    if ending == "sigkill":
        # Named segments outlive a killed process (the call's, a parked spare): the next start's
        # sweep removes them, as nobody holds them any more.
        left = files(shm)
        assert left
        sweep = remove_stale_segments(shm, older_than_s=0)
        assert sorted(sweep.removed) == left and sweep.held == [] and sweep.errors == []
    assert files(shm) == []


# --- ImageHandoff ---------------------------------------------------------------------------------

def test_handoff_gives_every_image_a_fresh_segment_and_kept_arrays_never_change(shm: Path) -> None:
    handoff = ImageHandoff(Dialect.PROCVISION, shm / "unused-files", spares=2)
    kept: list[tuple[np.ndarray, np.ndarray]] = []
    ids: list[str] = []
    try:
        for i in range(12):
            pixels = image(i)
            shm_id, meta = handoff.put(ImageInput(array=pixels))
            ids.append(shm_id)
            # What an algorithm that keeps the array in ``self`` holds on to.
            kept.append((read_image_from_shared_memory(shm_id, meta), pixels.copy()))
            handoff.release_all()
            assert not (shm / shm_id).exists()
            if i % 3 == 0:  # give the background time to hand out pooled spares too
                pool = handoff.pool
                assert pool is not None
                wait_until(lambda pool=pool: pool.spare_count == 2, what="spares")  # type: ignore[misc]
        assert len(set(ids)) == len(ids)
        for held, expected in kept:
            assert np.array_equal(held, expected)
        pool = handoff.pool
        assert pool is not None and pool.recycled == 0  # every image is still mapped here
    finally:
        handoff.close()
    assert files(shm) == []


def test_handoff_mono_and_bad_images(shm: Path) -> None:
    handoff = ImageHandoff(Dialect.PROCVISION, shm / "unused-files", spares=1)
    try:
        mono = image(3, (12, 9))
        shm_id, meta = handoff.put(ImageInput(array=mono))
        assert meta["color_space"] == "Mono8"
        assert np.array_equal(read_image_from_shared_memory(shm_id, meta)[:, :, 0], mono)
        with pytest.raises(RunnerError) as info:
            handoff.put(ImageInput(array=np.zeros((4, 4, 3), dtype=np.float32)))
        assert info.value.code == "1003" and "uint8" in info.value.message
        with pytest.raises(RunnerError) as info:
            handoff.put(ImageInput(array=np.zeros((4, 4, 4), dtype=np.uint8)))
        assert info.value.code == "1003" and "HxWx3" in info.value.message
        with pytest.raises(RunnerError) as info:
            handoff.put(ImageInput(encoded=b"not an image"))
        assert info.value.code == "1002"
        assert handoff.held_ids() == [shm_id]  # failed puts leave nothing behind
        # Non-contiguous input is copied correctly too.
        wide = image(4, (12, 18, 3))
        view = wide[:, ::2]
        shm_id, meta = handoff.put(ImageInput(array=view))
        assert np.array_equal(read_image_from_shared_memory(shm_id, meta), view)
        handoff.release_all()
    finally:
        handoff.close()


def test_a_segment_folder_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    handoff = ImageHandoff(Dialect.PROCVISION, tmp_path / "files", posix_dir=tmp_path / "missing", spares=2)
    try:
        with pytest.raises(RunnerError) as info:
            handoff.put(ImageInput(array=image(1)))
        assert info.value.code == "1002" and str(tmp_path / "missing") in info.value.message
        assert SHM_DIR_ENV in info.value.message
    finally:
        handoff.close()


def test_worker_environment_names_the_runners_segment_folder(tmp_path: Path, shm: Path) -> None:
    base = {"PATH": "/usr/bin", SHM_DIR_ENV: "/somewhere/else", "PROC_OTHER": "x"}
    env = worker_environment(base, tmp_path, tmp_path / "files", 1024)
    assert env[SHM_DIR_ENV] == str(shm) == str(posix_shm_dir())
    assert "PROC_OTHER" not in env
    explicit = worker_environment(base, tmp_path, tmp_path / "files", 1024, posix_dir=tmp_path / "segs")
    assert explicit[SHM_DIR_ENV] == str(tmp_path / "segs")
    assert ImageHandoff(Dialect.PROCVISION, tmp_path).posix_dir == Path(env[SHM_DIR_ENV])


# --- real workers ---------------------------------------------------------------------------------

_ANCHOR = "        if session is not None and session.id:"
#: ALGO plus ``keep``: the algorithm keeps every image array in ``self`` and reports their sums.
KEEPER = ALGO.replace(_ANCHOR, """        if user_params.get("keep") and shared_mem_id:
            self.__dict__.setdefault("kept", []).append(img)
            data["kept_sums"] = [int(np.asarray(k, dtype=np.int64).sum()) for k in self.kept]
""" + _ANCHOR)
assert KEEPER != ALGO


def test_workers_read_segments_from_the_runners_private_folder(deployer: Deployer, shm: Path) -> None:  # noqa: F811
    """With PROC_SHM_POSIX_DIR set for the runner, workers look in the same folder (was: 1007).

    Unboxed: a boxed worker gets its segments in its own private folder instead."""
    dep = deployer.deploy("algo", "1.0.0", KEEPER)
    sup = Supervisor(fast_settings(deployer.layout.root, sandbox="off"), deployer.layout)
    try:
        pool = sup.start(dep.spec())
        worker = pool.workers[0]
        sums = []
        for i in range(6):
            pixels = image(i)
            sums.append(int(pixels.astype(np.int64).sum()))
            out = pool.call(CallRequest("execute", user_params={"keep": True}, image=ImageInput(array=pixels)))
            assert out.status == "OK", out
            assert out.data["sum"] == sums[-1]
            # Every image the algorithm kept in ``self`` still has its own pixels.
            assert out.data["kept_sums"] == sums
        handoff = worker.handoff
        assert handoff is not None and handoff.posix_dir == shm
        segment_pool = handoff.pool
        assert segment_pool is not None and segment_pool.thread is not None
        wait_until(lambda: segment_pool.spare_count == 2, what="spares")
        # Every image is still held by the algorithm: none was recycled, no id outlived its call.
        assert segment_pool.recycled == 0
        assert files(shm) == []
        thread = segment_pool.thread
    finally:
        sup.shutdown(timeout_s=2)
    # shutdown's bound (2 s) can pass before a loaded machine has run the pool's close: wait for it.
    wait_until(lambda: not thread.is_alive(), what="the segment pool's thread to end")
    wait_until(lambda: files(shm) == [], what="every segment freed")


def test_segments_a_worker_let_go_of_are_reused_and_kept_ones_never_change(deployer: Deployer, shm: Path) -> None:  # noqa: F811
    """The worker unmaps an image the algorithm did not keep before it replies: back-to-back calls
    then reuse that segment's pages; an image the algorithm kept is never rewritten."""
    dep = deployer.deploy("algo", "1.0.0", KEEPER)
    sup = Supervisor(fast_settings(deployer.layout.root), deployer.layout)
    try:
        pool = sup.start(dep.spec())
        assert pool.call(CallRequest("execute", image=ImageInput(array=image(0)))).status == "OK"
        handoff = pool.workers[0].handoff
        assert handoff is not None and handoff.pool is not None
        segment_pool = handoff.pool
        wait_until(lambda: segment_pool.spare_count == 2, what="spares")
        kept: list[int] = []
        for i in range(1, 9):
            pixels = image(i)
            keep = i % 4 == 0
            out = pool.call(CallRequest("execute", user_params={"keep": keep}, image=ImageInput(array=pixels)))
            assert out.status == "OK", out
            assert out.data["sum"] == int(pixels.astype(np.int64).sum())
            if keep:
                kept.append(out.data["sum"])
                assert out.data["kept_sums"] == kept
        # Back to back, each of the 6 calls whose image was dropped handed its segment back unused.
        assert segment_pool.refused == 2 and segment_pool.recycled == 6, (segment_pool.refused, segment_pool.recycled)
        assert len(files(shm)) <= 2  # parked spares only
    finally:
        sup.shutdown(timeout_s=2)
    assert files(shm) == []


def test_a_crash_frees_the_old_workers_spares_and_stops_its_thread(deployer: Deployer, shm: Path) -> None:  # noqa: F811
    dep = deployer.deploy("algo", "1.0.0", ALGO)
    sup = Supervisor(fast_settings(deployer.layout.root), deployer.layout)
    try:
        pool = sup.start(dep.spec())
        worker = pool.workers[0]
        assert pool.call(CallRequest("execute", image=ImageInput(array=image(1)))).status == "OK"
        handoff = worker.handoff
        assert handoff is not None and handoff.pool is not None and handoff.pool.thread is not None
        segment_pool, thread = handoff.pool, handoff.pool.thread
        wait_until(lambda: segment_pool.spare_count == 2, what="spares")
        out = pool.call(CallRequest("execute", user_params={"mode": "crash"}, image=ImageInput(array=image(2))))
        assert out.status == "ERROR" and out.error_code == "1011", out
        # The crash handler closes the old handoff: its thread stops, its spares (some parked
        # under names) are removed.
        wait_until(lambda: not thread.is_alive() and files(shm) == [], what="old generation's pool closed")
        assert segment_pool.spare_count == 0 and segment_pool.backlog == 0 and handoff.pool is None
        wait_until(lambda: worker.state is State.RUNNING, what="restart")
        assert pool.call(CallRequest("execute", image=ImageInput(array=image(3)))).status == "OK"
    finally:
        sup.shutdown(timeout_s=2)
    assert files(shm) == []


def test_spares_are_disabled_when_they_cannot_be_named(shm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runner.supervision import segments

    pool = SegmentPool(shm, spares=2)
    try:
        assert pool.take(8, 8, 3) is None
        pool.retire([])
        wait_until(lambda: pool.spare_count == 2, what="spares")

        def no_link(spare: object, shm_dir: str) -> None:
            raise PermissionError("linkat refused")

        monkeypatch.setattr(segments, "_link", no_link)
        assert pool.take(8, 8, 3) is None  # the caller creates the segment inline instead
        pool.retire([])
        assert pool.spares_wanted == 0 and pool.last_prepare_error and "linkat refused" in pool.last_prepare_error
        wait_until(lambda: pool.spare_count == 0 and pool.backlog == 0, what="spares dropped")
        assert pool.take(8, 8, 3) is None
    finally:
        pool.close()
    assert files(shm) == []
