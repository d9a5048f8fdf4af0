"""The route table on its own: bindings, in-flight counts, session pins and retirement, with a fake
clock and no worker processes."""

from __future__ import annotations

import threading

import pytest

from runner.errors import RunnerError
from runner.routing.activation import Binding
from runner.routing.retention import prune_candidates, rollback_target
from runner.routing.table import RouteTable

OLD, NEW = ("algo", "1.0.0"), ("algo", "2.0.0")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _bind(pid: str, key: tuple[str, str], at: str = "2026-01-01T00:00:00Z", limit: int | None = None) -> Binding:
    return Binding(pid, key[0], key[1], at, limit)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def table(clock: Clock) -> RouteTable:
    return RouteTable(session_grace_s=2.0, drain_timeout_s=30.0, clock=clock)


def test_an_unbound_pid_is_refused_naming_invalid_pid(table: RouteTable) -> None:
    with pytest.raises(RunnerError) as info:
        table.enter("P1", None)
    assert info.value.code == "2009" and info.value.details["runtime_code"] == "1001"
    assert table.in_flight(OLD) == 0


def test_enter_counts_the_call_until_it_leaves(table: RouteTable) -> None:
    table.flip([_bind("P1", OLD)])
    assert table.enter("P1", None) == OLD and table.enter("P1", None) == OLD
    assert table.in_flight(OLD) == 2
    table.leave(OLD, "P1", None, end_session=False)
    table.leave(OLD, "P1", None, end_session=False)
    assert table.in_flight(OLD) == 0


def test_a_flip_replaces_the_table_a_reader_already_holds_is_unchanged(table: RouteTable) -> None:
    table.flip([_bind("P1", OLD), _bind("P2", OLD)])
    before = table.bindings()
    table.flip([_bind("P1", NEW)])
    assert before["P1"].key == OLD
    assert table.binding("P1") is not None and table.bindings()["P1"].key == NEW
    assert table.moved("P1", OLD) and not table.moved("P2", OLD)
    table.unbind(["P2"])
    assert not table.bound(OLD) and table.bound(NEW)
    table.unbind_version(NEW)
    assert table.bindings() == {}


def test_a_session_stays_on_its_version_within_the_grace(table: RouteTable, clock: Clock) -> None:
    table.flip([_bind("P1", OLD)])
    assert table.enter("P1", "s") == OLD
    table.leave(OLD, "P1", "s", end_session=False)
    table.flip([_bind("P1", NEW)])
    clock.now += 1.0
    assert table.enter("P1", "s") == OLD  # came back within the grace
    table.leave(OLD, "P1", "s", end_session=False)
    clock.now += 2.5
    assert table.enter("P1", "s") == NEW  # idle longer than the grace: re-pinned to the current version
    table.leave(NEW, "P1", "s", end_session=True)
    assert table.pinned(NEW) == 0 and table.pinned(OLD) == 0
    assert table.enter("P1", None) == NEW


def test_a_session_cannot_keep_an_old_version_past_the_drain_deadline(clock: Clock) -> None:
    table = RouteTable(session_grace_s=5.0, drain_timeout_s=6.0, clock=clock)
    table.flip([_bind("P1", OLD)])
    table.leave(table.enter("P1", "s"), "P1", "s", end_session=False)
    table.flip([_bind("P1", NEW)])
    for _ in range(3):
        clock.now += 2.0
        key = table.enter("P1", "s")
        table.leave(key, "P1", "s", end_session=False)
    assert key == NEW


def test_pins_beyond_the_capacity_drop_the_least_recently_used(clock: Clock) -> None:
    table = RouteTable(session_grace_s=2.0, drain_timeout_s=30.0, pin_capacity=2, clock=clock)
    table.flip([_bind("P1", OLD)])
    for session in ("a", "b", "c"):
        table.leave(table.enter("P1", session), "P1", session, end_session=False)
    assert table.pinned(OLD) == 2


def test_a_retiring_version_closes_and_its_sessions_move(table: RouteTable, clock: Clock) -> None:
    table.flip([_bind("P1", OLD)])
    table.leave(table.enter("P1", "s"), "P1", "s", end_session=False)
    table.flip([_bind("P1", NEW)])
    clock.now += 1.0
    assert table.enter("P1", "s") == OLD  # still within the grace
    table.leave(OLD, "P1", "s", end_session=False)
    # Retiring without a session grace (as uninstall does): no call in flight, so it closes at once.
    table.close_when_settled(OLD, session_grace_s=0.0, deadline=clock.now + 10.0)
    assert table.pinned(OLD) == 0
    assert table.enter("P1", "s") == NEW
    table.closed(OLD)


def test_retiring_gives_up_on_idle_sessions_at_its_deadline(table: RouteTable, clock: Clock) -> None:
    table.flip([_bind("P1", OLD)])
    table.leave(table.enter("P1", "s"), "P1", "s", end_session=False)
    table.flip([_bind("P1", NEW)])
    # The session was used just now: only the (already passed) deadline ends the wait.
    table.close_when_settled(OLD, session_grace_s=2.0, deadline=clock.now)
    assert table.pinned(OLD) == 0
    assert table.enter("P1", "s") == NEW


def test_retiring_waits_for_the_call_in_flight(table: RouteTable, clock: Clock) -> None:
    table.flip([_bind("P1", OLD)])
    key = table.enter("P1", None)
    done = threading.Event()

    def retire() -> None:
        table.close_when_settled(OLD, session_grace_s=0.0, deadline=clock.now + 60.0)
        done.set()

    thread = threading.Thread(target=retire, daemon=True)
    thread.start()
    assert not done.wait(0.2)  # a call is in flight: retirement waits (bounded by the fake deadline)
    table.leave(key, "P1", None, end_session=False)
    assert done.wait(30.0)
    thread.join(30.0)


def test_rollback_goes_to_the_latest_other_usable_version() -> None:
    history = [_bind("P1", ("algo", "0.9.0")), _bind("P1", OLD), _bind("P1", NEW), _bind("P1", OLD)]
    current = history[-1]
    assert rollback_target("P1", current, history, usable=lambda key: True) == (NEW, 2)
    assert rollback_target("P1", current, history, usable=lambda key: key != NEW) == (("algo", "0.9.0"), 0)
    with pytest.raises(RunnerError) as info:
        rollback_target("P1", current, history, usable=lambda key: False)
    assert info.value.code == "2009"


def test_prune_keeps_the_most_recently_used_of_the_ever_activated() -> None:
    records = [{"name": "algo", "version": v, "created_at": c}
               for v, c in (("1", "2026-01-01"), ("2", "2026-01-02"), ("3", "2026-01-03"), ("4", "2026-01-04"))]
    used = {("algo", "1"): "2026-02-01", ("algo", "2"): "2026-02-03", ("algo", "3"): "2026-02-02"}
    ever = set(used)  # version 4 was never activated: it is left alone

    def last(name: str, version: str) -> str:
        return used.get((name, version), "")

    assert prune_candidates(records, ever, keep=2, last_used=last) == [("algo", "1")]
    assert prune_candidates(records, ever, keep=5, last_used=last) == []
