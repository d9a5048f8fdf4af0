"""Unit tests of the supervision building blocks: states, backoff, crash loop, rotating log."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from runner.supervision.backoff import Backoff, CrashLoop
from runner.supervision.logs import RotatingLineLog
from runner.supervision.states import (
    IllegalTransition,
    State,
    StateMachine,
    SupervisorEvent,
    derive_version_state,
)


def test_transitions_are_validated_and_emit_events() -> None:
    events: list[SupervisorEvent] = []
    machine = StateMachine("a", "1", 0, events.append)
    machine.transition(State.STARTING, "go")
    machine.transition(State.RUNNING, "ready", pid=42)
    machine.transition(State.EXECUTING, "call")
    with pytest.raises(IllegalTransition):
        machine.transition(State.INSTALLED, "nonsense")
    assert machine.state is State.EXECUTING
    assert [(e.old_state, e.new_state) for e in events] == [
        (State.INSTALLED, State.STARTING), (State.STARTING, State.RUNNING), (State.RUNNING, State.EXECUTING)]
    assert events[1].pid == 42 and events[1].to_dict()["new_state"] == "running"


def test_illegal_transition_is_refused_loudly_and_changes_nothing() -> None:
    events: list[SupervisorEvent] = []
    machine = StateMachine("a", "1", 0, events.append)
    with pytest.raises(IllegalTransition, match="installed -> running"):
        machine.transition(State.RUNNING, "x")
    assert machine.state is State.INSTALLED and events == []
    machine.transition(State.STARTING, "x")
    assert machine.state is State.STARTING


def test_version_state_derives_from_workers() -> None:
    assert derive_version_state([]) is State.INSTALLED
    assert derive_version_state([State.FAILED, State.RUNNING]) is State.RUNNING
    assert derive_version_state([State.STARTING, State.FAILED]) is State.STARTING
    # A worker waiting out a restart backoff: the version is still on its way up.
    assert derive_version_state([State.BACKOFF, State.FAILED]) is State.STARTING
    assert derive_version_state([State.FAILED, State.STOPPED]) is State.FAILED
    assert derive_version_state([State.EXECUTING, State.RUNNING]) is State.EXECUTING
    assert derive_version_state([State.RUNNING], stopping=True) is State.STOPPING
    assert derive_version_state([State.STOPPED], stopping=True) is State.STOPPED


def test_backoff_grows_with_jitter_caps_and_resets() -> None:
    now = [100.0]
    backoff = Backoff(0.5, 4.0, 60.0, rng=random.Random(1), clock=lambda: now[0])
    delays = [backoff.next_delay() for _ in range(8)]
    assert 0.375 <= delays[0] <= 0.625
    assert 0.75 <= delays[1] <= 1.25
    assert all(d <= 4.0 for d in delays) and delays[-1] >= 3.0
    backoff.reset_if_healthy(up_since=90.0)  # up 10 s: not long enough
    assert backoff.next_delay() >= 3.0
    backoff.reset_if_healthy(up_since=30.0)  # up 70 s
    assert backoff.next_delay() <= 0.625


def test_crash_loop_counts_within_window() -> None:
    now = [0.0]
    loop = CrashLoop(2, 10.0, clock=lambda: now[0])
    assert not loop.record() and not loop.record()
    now[0] = 20.0  # the first two fell out of the window
    assert not loop.record() and not loop.record()
    assert loop.record()


def test_rotating_log_caps_size_and_keeps_tail(tmp_path: Path) -> None:
    log = RotatingLineLog(tmp_path / "logs" / "worker.log", max_bytes=2048, backups=2, tail_lines=5)
    for i in range(300):
        log.write(f"line {i:04d} " + "x" * 40, "[w0] ")
    log.close()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["worker.log", "worker.log.1", "worker.log.2"]
    assert all((tmp_path / "logs" / f).stat().st_size <= 2048 for f in files)
    assert "line 0299" in (tmp_path / "logs" / "worker.log").read_text()
    tail = log.tail(3)
    assert len(tail) == 3 and tail[-1].startswith("[w0] line 0299")
