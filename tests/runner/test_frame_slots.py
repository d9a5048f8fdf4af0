"""Frame slots are bounded, usable only with their lease key, one call at a time, and reclaimed when
their lease expires or their client process is gone (injectable clock and liveness: no waiting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import RunnerError
from runner.fastpath.slots import FrameSlots


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _table(tmp_path: Path, max_slots: int = 2, alive: set[int] | None = None) -> tuple[FrameSlots, Clock]:
    clock = Clock()
    live = alive if alive is not None else set()
    return FrameSlots(tmp_path, max_slots, 30.0, clock=clock, alive=lambda pid: pid in live), clock


def _code(exc: pytest.ExceptionInfo[RunnerError]) -> str:
    return str(exc.value.code.value if hasattr(exc.value.code, "value") else exc.value.code)


def test_lease_creates_a_private_file_the_daemon_reads_without_copying(tmp_path: Path) -> None:
    slots, _ = _table(tmp_path)
    slot = slots.lease((4, 5, 3))
    assert slot.path.exists() and (slot.path.stat().st_mode & 0o777) == 0o600
    with open(slot.path, "r+b") as handle:
        handle.write(bytes(range(60)))
    assert slot.array().reshape(-1).tolist() == list(range(60))
    assert not slot.array().flags.writeable


def test_foreign_and_unknown_slots_are_refused_with_codes(tmp_path: Path) -> None:
    slots, _ = _table(tmp_path)
    slot = slots.lease((2, 2))
    with pytest.raises(RunnerError) as foreign:
        slots.acquire(slot.slot_id, "not-the-key")
    assert _code(foreign) == "2051"
    with pytest.raises(RunnerError) as missing_key:
        slots.acquire(slot.slot_id, None)
    assert _code(missing_key) == "2051"
    with pytest.raises(RunnerError) as unknown:
        slots.acquire("pvslot-nope", slot.key)
    assert _code(unknown) == "2050"


def test_slots_are_bounded(tmp_path: Path) -> None:
    slots, _ = _table(tmp_path, max_slots=2)
    slots.lease((2, 2))
    second = slots.lease((2, 2))
    with pytest.raises(RunnerError) as full:
        slots.lease((2, 2))
    assert _code(full) == "2052"
    slots.release(second.slot_id, second.key)
    assert not second.path.exists()
    slots.lease((2, 2))


def test_a_slot_runs_one_call_at_a_time(tmp_path: Path) -> None:
    slots, _ = _table(tmp_path)
    slot = slots.lease((2, 2))
    held = slots.acquire(slot.slot_id, slot.key)
    with pytest.raises(RunnerError) as busy:
        slots.acquire(slot.slot_id, slot.key)
    assert _code(busy) == "2053"
    slots.release_call(held)
    slots.release_call(slots.acquire(slot.slot_id, slot.key))


def test_expired_lease_is_reclaimed_and_use_renews_it(tmp_path: Path) -> None:
    slots, clock = _table(tmp_path)
    slot = slots.lease((2, 2))
    clock.now += 20
    slots.release_call(slots.acquire(slot.slot_id, slot.key))  # renews for another 30 s
    clock.now += 20
    assert slots.reclaim() == []
    clock.now += 11
    assert slots.reclaim() == [slot.slot_id]
    assert not slot.path.exists()
    with pytest.raises(RunnerError) as gone:
        slots.acquire(slot.slot_id, slot.key)
    assert _code(gone) == "2050"


def test_slots_of_a_dead_client_are_reclaimed_but_not_during_a_call(tmp_path: Path) -> None:
    alive = {4242}
    slots, _ = _table(tmp_path, alive=alive)
    slot = slots.lease((2, 2), client_pid=4242)
    held = slots.acquire(slot.slot_id, slot.key)
    alive.clear()
    assert slots.reclaim() == []  # in a call: kept until it ends
    slots.release_call(held)
    assert slots.reclaim() == [slot.slot_id]


def test_unusable_shapes_are_2054(tmp_path: Path) -> None:
    slots, _ = _table(tmp_path)
    for shape in ((0, 4), (4,), (2, 2, 4), (2, 2, 3, 1)):
        with pytest.raises(RunnerError) as bad:
            slots.lease(shape)
        assert _code(bad) == "2054"
    assert slots.count() == 0


def test_a_shape_too_large_to_map_is_2054_not_a_server_error(tmp_path: Path) -> None:
    # Found by the schema fuzzer: numpy's product of such a shape overflowed to a negative size and
    # fallocate failed with EINVAL (a 500). Python ints keep the size exact; what cannot be made is 2054.
    huge = (2**40, 2**40, 3)
    limited = FrameSlots(tmp_path, 2, 30.0, max_bytes=10_000)
    with pytest.raises(RunnerError) as over_limit:
        limited.lease(huge)
    assert _code(over_limit) == "2054" and "over max_image_bytes" in str(over_limit.value)
    unlimited, _ = _table(tmp_path)
    with pytest.raises(RunnerError) as unmappable:
        unlimited.lease(huge)
    assert _code(unmappable) == "2054"
    assert unlimited.count() == 0 and not list(tmp_path.glob("pvslot-*"))


def test_close_frees_every_slot(tmp_path: Path) -> None:
    slots, _ = _table(tmp_path)
    paths = [slots.lease((2, 2)).path for _ in range(2)]
    slots.close()
    assert not any(p.exists() for p in paths)


def test_slot_files_left_by_a_killed_daemon_are_removed_but_live_ones_kept(tmp_path: Path) -> None:
    import mmap
    import os

    dead = tmp_path / "pvslot-deadbeef"
    dead.write_bytes(b"\0" * 16)
    live = tmp_path / "pvslot-livecafe"
    live.write_bytes(b"\0" * 16)
    for path in (dead, live):
        os.utime(path, (1, 1))  # old
    with open(live, "r+b") as handle:
        held = mmap.mmap(handle.fileno(), 16)  # another daemon's mapping: still in use
    try:
        slots = FrameSlots(tmp_path, 2, 30.0, stale_after_s=60.0)
        assert not dead.exists() and live.exists()
        assert slots.stale.removed == [dead.name] and slots.stale.held == [live.name]
    finally:
        held.close()
