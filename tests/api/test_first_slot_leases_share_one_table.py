"""Clients leasing their first frame slots at the same moment all get slots of one table.

The table is made on first use, and leases run on the thread pool. Before the creation was locked,
every request racing through the first use made its own table and the last one won: the slots leased
from the others answered 404 (2050) on their next call (seen in benchmarks/worker_scaling.py)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runner.api.routes import slots as slot_routes
from runner.config import Settings
from runner.fastpath.slots import FrameSlots
from tests.support.waiting import wait_until

CALLERS = 4


def test_racing_first_uses_make_one_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrived = 0
    arrived_lock = threading.Lock()
    made: list[FrameSlots] = []

    class Table(FrameSlots):
        """A table whose construction waits until every caller asked for the table (or could not)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append(self)
            # Unlocked creation lets the other callers in here too; locked, they wait at the lock.
            wait_until(lambda: arrived == CALLERS, timeout_s=10, what="every caller asked for the table")
            super().__init__(tmp_path / "shm", *args[1:], **kwargs)

    (tmp_path / "shm").mkdir()
    monkeypatch.setattr(slot_routes, "FrameSlots", Table)
    request: Any = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace()))
    ctx: Any = SimpleNamespace(settings=Settings(root=tmp_path / "root"))
    tables: list[FrameSlots] = []

    def first_use() -> None:
        nonlocal arrived
        with arrived_lock:
            arrived += 1
        tables.append(slot_routes.frame_slots(request, ctx))

    callers = [threading.Thread(target=first_use) for _ in range(CALLERS)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(30)
    assert len(made) == 1
    assert len(tables) == CALLERS and all(table is made[0] for table in tables)
    leased = [table.lease((2, 2)) for table in tables]
    for slot in leased:  # every caller's slot is usable from the table the app keeps
        made[0].release_call(made[0].acquire(slot.slot_id, slot.key))
