"""Recycling used segments only when no other process holds them, and the stale-segment sweep.

Real tmpfs segments, real holder processes (mapping images the way a worker does), real leases.
"""

from __future__ import annotations

import errno
import mmap
import os
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from procvision_algorithm_sdk import read_image_from_shared_memory
from procvision_algorithm_sdk.shared_memory import ImageSegment
from runner.store.layout import RootLayout
from runner.supervision import Supervisor
from runner.supervision.segments import SegmentPool, remove_stale_segments, unused_elsewhere
from tests.runner.supervision_support import fast_settings, private_segment_folder
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

#: Maps images by id and keeps them (like an algorithm keeping arrays in ``self``); answers sums.
HOLDER = textwrap.dedent("""
    import sys
    import numpy as np
    from procvision_algorithm_sdk import read_image_from_shared_memory
    kept = []
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "map":
            shm_id, height, width = arg.split()
            meta = {"width": int(width), "height": int(height), "color_space": "RGB"}
            kept.append(read_image_from_shared_memory(shm_id, meta))
            print("mapped", flush=True)
        elif cmd == "sums":
            print(" ".join(str(int(k.astype(np.int64).sum())) for k in kept), flush=True)
        elif cmd == "drop":
            kept.clear()
            print("dropped", flush=True)
""")


class Holder:
    """A separate process that maps segments and keeps them until told to drop them."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])

    def ask(self, line: str, timeout_s: float = 30.0) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        assert ready, f"holder did not answer {line!r} within {timeout_s}s"
        answer = self.proc.stdout.readline().strip()
        assert answer or self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def shm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private segment folder on /dev/shm (leases need a real tmpfs), for this process and its children."""
    yield from private_segment_folder(tmp_path, monkeypatch, "pv-test-recycle", require_tmpfs=True)


@pytest.fixture
def holder() -> Iterator[Holder]:
    h = Holder()
    try:
        yield h
    finally:
        h.close()


def image(seed: int, shape: tuple[int, int, int] = (24, 32, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def ready_pool(shm: Path, spares: int = 2, shape: tuple[int, int, int] = (24, 32, 3)) -> SegmentPool:
    pool = SegmentPool(shm, spares=spares)
    assert pool.take(*shape) is None
    pool.retire([])
    wait_until(lambda: pool.spare_count == spares, what="spares")
    return pool


# --- the lease test --------------------------------------------------------------------------------

def test_unused_elsewhere_sees_another_process_mapping(shm: Path, holder: Holder) -> None:
    seg = ImageSegment.create_array(image(1), str(shm))
    seg.close()
    fd = os.open(seg.path, os.O_RDWR)
    own = mmap.mmap(fd, os.fstat(fd).st_size)
    try:
        assert unused_elsewhere(fd)  # a mapping made through this very description does not count
        assert holder.ask(f"map {seg.id} 24 32") == "mapped"
        os.unlink(seg.path)  # the holder's mapping keeps the file, and the lease test still sees it
        assert not unused_elsewhere(fd)
        assert holder.ask("drop") == "dropped"
        # The holder's fd was closed right after mapping; dropping the array unmaps it.
        assert unused_elsewhere(fd)
        other = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)  # a second description, even here
        try:
            assert not unused_elsewhere(fd)
        finally:
            os.close(other)
        assert unused_elsewhere(fd)
    finally:
        own.close()
        os.close(fd)
        seg.unlink()


# --- SegmentPool recycling -------------------------------------------------------------------------

def test_pool_recycles_only_segments_no_process_holds(shm: Path, holder: Holder) -> None:
    pool = ready_pool(shm)
    kept_sums: list[int] = []
    call_ids: list[str] = []
    try:
        for i in range(10):
            seg = pool.take(24, 32, 3)
            assert seg is not None and seg.array is not None, f"call {i} got no spare"
            pixels = image(100 + i)
            seg.array[...] = pixels
            call_ids.append(seg.id)
            if i % 3 == 0:  # this "algorithm" keeps every third image
                assert holder.ask(f"map {seg.id} 24 32") == "mapped"
                kept_sums.append(int(pixels.astype(np.int64).sum()))
            pool.retire([seg])
            assert not (shm / seg.id).exists()  # no call id outlives its call
            wait_until(lambda: pool.spare_count == 2, what="spares refilled")
        assert pool.refused == 4 and pool.recycled == 6
        # The kept images never changed, although their spares' replacements were rewritten since.
        assert holder.ask("sums") == " ".join(str(s) for s in kept_sums)
        assert len(set(call_ids)) == len(call_ids)
        assert not set(call_ids) & set(files(shm))
    finally:
        pool.close()
    assert files(shm) == []


def test_a_parked_spare_someone_opened_is_not_handed_out(shm: Path, holder: Holder) -> None:
    pool = ready_pool(shm, spares=1)
    try:
        # Park a used spare. Its lease test can be refused for an instant on a busy machine (seen
        # once in a full suite run); the pool then frees it and prepares a fresh one: try again.
        for _ in range(5):
            seg = pool.take(24, 32, 3)
            assert seg is not None and seg.array is not None
            seg.array[...] = image(1)
            pool.retire([seg])
            if pool.recycled == 1:
                break
            wait_until(lambda: pool.spare_count == 1 and pool.backlog == 0, what="a fresh spare")
        assert pool.recycled == 1 and pool.spare_count == 1
        (parked,) = files(shm)
        # A process finds the parked name in the folder and maps it.
        assert holder.ask(f"map {parked} 24 32") == "mapped"
        before = holder.ask("sums")
        refused = pool.refused
        again = pool.take(24, 32, 3)
        assert again is None  # the only spare is held elsewhere: the caller creates a segment inline
        assert pool.refused == refused + 1
        pool.retire([])
        wait_until(lambda: pool.spare_count == 1 and pool.backlog == 0, what="a fresh spare")
        fresh = pool.take(24, 32, 3)
        assert fresh is not None and fresh.array is not None and fresh.id != parked
        fresh.array[...] = image(2)
        pool.retire([fresh])
        assert holder.ask("sums") == before
        assert parked not in files(shm)
    finally:
        pool.close()


def test_recycling_falls_back_to_fresh_segments_when_leases_are_refused(
        shm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The lease test lives where the recycling decision is made (SegmentRecycler).
    from runner.supervision import segment_recycling

    def no_lease(fd: int) -> bool:
        raise PermissionError(errno.EACCES, "Permission denied")

    pool = ready_pool(shm)
    try:
        monkeypatch.setattr(segment_recycling, "unused_elsewhere", no_lease)
        for i in range(4):
            seg = pool.take(24, 32, 3)
            if seg is not None:
                assert seg.array is not None
                seg.array[...] = image(i)
                assert np.array_equal(read_image_from_shared_memory(seg.id, seg.image_meta()), image(i))
                pool.retire([seg])
                assert not (shm / seg.id).exists()
            else:
                pool.retire([])
            wait_until(lambda: pool.spare_count == 2 and pool.backlog == 0, what="spares")
        assert not pool.recycling and pool.recycled == 0
        assert pool.last_recycle_error is not None and "lease" in pool.last_recycle_error
        assert files(shm) == []  # no parked names: fresh spares are unnamed
    finally:
        pool.close()


# --- stale segments --------------------------------------------------------------------------------

def _aged(path: Path, age_s: float = 3600.0) -> Path:
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_sweep_removes_old_segments_nobody_holds_and_keeps_the_rest(shm: Path, holder: Holder) -> None:
    stale = ImageSegment.create_array(image(1), str(shm))
    stale.close()
    _aged(Path(stale.path))
    held = ImageSegment.create_array(image(2), str(shm))
    held.close()
    assert holder.ask(f"map {held.id} 24 32") == "mapped"
    _aged(Path(held.path))
    young = ImageSegment.create_array(image(3), str(shm))
    young.close()
    foreign = shm / "not-a-segment"
    foreign.write_bytes(b"x")
    _aged(foreign)
    link = shm / "pvshm-link"
    link.symlink_to(foreign)
    try:
        sweep = remove_stale_segments(shm, older_than_s=60)
        assert sweep.removed == [stale.id]
        assert sweep.held == [held.id]
        assert len(sweep.errors) == 1 and "pvshm-link" in sweep.errors[0] and "symbolic link" in sweep.errors[0]
        assert files(shm) == sorted([held.id, young.id, "not-a-segment", "pvshm-link"])
        assert holder.ask("drop") == "dropped"
        assert remove_stale_segments(shm, older_than_s=60).removed == [held.id]
        assert sorted(remove_stale_segments(shm, older_than_s=0).removed) == [young.id]
    finally:
        link.unlink()
        foreign.unlink()
        for seg in (stale, held, young):
            seg.unlink()
    assert remove_stale_segments(shm / "missing").removed == []


def test_a_live_pools_parked_spares_survive_a_sweep(shm: Path) -> None:
    pool = ready_pool(shm)
    try:
        seg = pool.take(24, 32, 3)
        assert seg is not None
        pool.retire([seg])
        (parked,) = files(shm)
        _aged(shm / parked)
        sweep = remove_stale_segments(shm, older_than_s=0)
        assert sweep.removed == [] and sweep.held == [parked]
        again = pool.take(24, 32, 3)  # the sweep's brief open is over: the spare is usable
        assert again is not None and again.id == parked
        pool.retire([again])
    finally:
        pool.close()
    assert files(shm) == []


def test_supervisor_start_removes_stale_segments(shm: Path, tmp_path: Path) -> None:
    stale = ImageSegment.create_array(image(1), str(shm))
    stale.close()
    _aged(Path(stale.path))
    young = ImageSegment.create_array(image(2), str(shm))
    young.close()
    root = tmp_path / "root"
    sup = Supervisor(fast_settings(root), RootLayout(root))
    try:
        assert sup.stale_segments.removed == [stale.id]
        assert files(shm) == [young.id]
    finally:
        sup.shutdown(timeout_s=2)
        young.unlink()
