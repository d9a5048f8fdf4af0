"""The worker slot's lifecycle, driven through a fake launcher: no processes, milliseconds per test.

Start to ready, crash to BACKOFF to a restart, the crash loop, a stop during the backoff, illegal
transitions refused, and late reports of an old process generation ignored.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from procvision_algorithm_sdk.errors import ErrorCode
from runner.config import Settings
from runner.supervision.dialects import CallRequest, ImageInput
from runner.supervision.image_size import LastImageSize
from runner.supervision.logs import RotatingLineLog
from runner.supervision.restart_policy import RestartPolicy
from runner.supervision.spec import WorkerSpec
from runner.supervision.states import (
    TRANSITIONS,
    IllegalTransition,
    State,
    SupervisorEvent,
    check_transition,
)
from runner.supervision.worker import Worker
from tests.support.fake_launcher import FakeLauncher
from tests.support.waiting import wait_until

WAIT_S = 30.0  # generous: only bounds a broken test; a working one takes milliseconds


class Slot:
    """One worker slot on a fake launcher, with the events it emitted."""

    def __init__(self, tmp_path: Path, policy: RestartPolicy | None = None,
                 image_size: LastImageSize | None = None, **settings: Any) -> None:
        package = tmp_path / "pkg"
        package.mkdir(exist_ok=True)
        python = tmp_path / "python"
        python.write_text("")
        values: dict[str, Any] = {"root": tmp_path / "root", "sandbox": "off", "shm_spares_per_worker": 0,
                                  "restart_backoff_initial_ms": 1, "restart_backoff_max_ms": 2,
                                  "heartbeat_interval_ms": 60000, "crash_loop_max": 3,
                                  "crash_loop_window_s": 60}
        values.update(settings)
        self.settings = Settings(**values)
        self.spec = WorkerSpec("algo", "1.0.0", tmp_path, package, python)
        self.launcher = FakeLauncher()
        self.events: list[SupervisorEvent] = []
        self._events_lock = threading.Lock()
        self.log = RotatingLineLog(tmp_path / "logs" / "worker.log", 1 << 16, 1, 50)
        self.worker = Worker(self.spec, 0, self.settings, self.log, tmp_path / "shm", self.launcher, self._sink,
                             restart_policy=policy, image_size=image_size)

    def _sink(self, event: SupervisorEvent) -> None:
        with self._events_lock:
            self.events.append(event)

    def states(self) -> list[State]:
        with self._events_lock:
            return [e.new_state for e in self.events if e.kind == "state" and e.new_state is not None]

    def wait_for(self, state: State, what: str) -> None:
        wait_until(lambda: self.worker.state is state, WAIT_S, what=what)

    def close(self) -> None:
        self.launcher.release_handshake()
        self.worker.stop(0.1)
        self.log.close()


@pytest.fixture
def slots(tmp_path: Path) -> Iterator[list[Slot]]:
    made: list[Slot] = []
    yield made
    for slot in made:
        slot.close()


def make(slots: list[Slot], tmp_path: Path, policy: RestartPolicy | None = None, **settings: Any) -> Slot:
    slot = Slot(tmp_path, policy, **settings)
    slots.append(slot)
    return slot


def test_start_reaches_running_and_serves_calls(slots: list[Slot], tmp_path: Path) -> None:
    slot = make(slots, tmp_path)
    slot.worker.start()
    slot.wait_for(State.RUNNING, "worker ready")
    process = slot.launcher.processes[0]
    assert slot.worker.pid == process.pid
    assert slot.states()[:2] == [State.STARTING, State.RUNNING]
    outcome = slot.worker.call(CallRequest(phase="execute"), 5.0)
    assert outcome.ok and outcome.worker_pid == process.pid
    assert slot.worker.state is State.RUNNING and slot.worker.counters["calls"] == 1


def test_crash_goes_through_backoff_to_a_new_generation(slots: list[Slot], tmp_path: Path) -> None:
    slot = make(slots, tmp_path)
    slot.worker.start()
    slot.wait_for(State.RUNNING, "worker ready")
    first = slot.launcher.processes[0]
    first.crash(7)
    wait_until(lambda: len(slot.launcher.processes) == 2 and slot.worker.state is State.RUNNING, WAIT_S,
               what="restarted worker ready")
    second = slot.launcher.processes[1]
    assert slot.worker.pid == second.pid != first.pid
    states = slot.states()
    ready = states.index(State.RUNNING)
    # Down -> waiting out the backoff (visible as BACKOFF) -> starting the new process -> ready.
    assert states[ready + 1:ready + 5] == [State.BACKOFF, State.BACKOFF, State.STARTING, State.RUNNING]
    assert slot.worker.counters["crashes"] == 1 and slot.worker.counters["restarts"] == 1
    assert slot.worker.last_error is not None and slot.worker.last_error["exit_code"] == 7
    assert slot.launcher.launched[0].ended  # the old generation's tree was ended
    assert [e.kind for e in slot.events if e.kind in ("crash", "restart")] == ["crash", "restart"]


def test_backoff_state_is_visible_while_the_restart_waits(slots: list[Slot], tmp_path: Path) -> None:
    slot = make(slots, tmp_path, restart_backoff_initial_ms=60000, restart_backoff_max_ms=60000)
    slot.worker.start()
    slot.wait_for(State.RUNNING, "worker ready")
    slot.launcher.processes[0].crash()
    wait_until(lambda: slot.worker.restart_at is not None, WAIT_S, what="restart scheduled")
    status = slot.worker.status()
    assert status["state"] == "backoff" and status["restart_at"] > 0
    outcome = slot.worker.call(CallRequest(phase="execute"), 5.0)
    assert outcome.error_code == ErrorCode.WORKER_UNAVAILABLE.value and "backoff" in outcome.message
    assert len(slot.launcher.processes) == 1


def test_failed_handshakes_end_in_a_crash_loop_until_an_explicit_start(slots: list[Slot], tmp_path: Path) -> None:
    slot = make(slots, tmp_path, crash_loop_max=2)
    slot.launcher.handshakes.extend(["fail"] * 3)
    slot.worker.start()
    slot.wait_for(State.FAILED, "crash loop detected")
    assert len(slot.launcher.processes) == 3  # max 2 failures in the window; the third gives up
    assert slot.worker.last_error is not None and "crash loop" in slot.worker.last_error["reason"]
    assert "camera missing" in slot.worker.last_error["reason"]
    assert slot.worker.first_failure is not None and "camera missing" in slot.worker.first_failure.message
    assert any(e.kind == "failed" for e in slot.events)
    assert slot.worker.first_attempt_done.is_set()
    slot.worker.start()  # the explicit start clears the history
    slot.wait_for(State.RUNNING, "worker ready after an explicit start")
    assert len(slot.launcher.processes) == 4 and slot.worker.crash_loop.recent == 0


def test_failures_spread_beyond_the_window_never_trip_the_crash_loop(slots: list[Slot], tmp_path: Path) -> None:
    now = [1000.0]
    policy = RestartPolicy(0.001, 0.002, 60.0, max_failures=1, window_s=10.0, clock=lambda: now[0],
                           rng=random.Random(3))
    slot = make(slots, tmp_path, policy)
    slot.worker.start()
    for crashes in range(1, 4):
        slot.wait_for(State.RUNNING, f"worker ready before crash {crashes}")
        now[0] += 30.0  # each failure falls out of the window before the next
        slot.launcher.processes[-1].crash()
        wait_until(lambda n=crashes: slot.worker.counters["restarts"] == n, WAIT_S, what="restart scheduled")
    slot.wait_for(State.RUNNING, "worker ready after the last crash")
    assert slot.worker.counters["crashes"] == 3 and State.FAILED not in slot.states()


def test_stop_during_backoff_cancels_the_restart(slots: list[Slot], tmp_path: Path) -> None:
    slot = make(slots, tmp_path, restart_backoff_initial_ms=60000, restart_backoff_max_ms=60000)
    slot.worker.start()
    slot.wait_for(State.RUNNING, "worker ready")
    slot.launcher.processes[0].crash()
    slot.wait_for(State.BACKOFF, "worker waiting out its backoff")
    wait_until(lambda: any(t.name.startswith("pv-restart-") for t in threading.enumerate()), WAIT_S,
               what="restart scheduled")
    slot.worker.stop(0.1)
    assert slot.worker.state is State.STOPPED
    assert slot.states()[-2:] == [State.STOPPING, State.STOPPED]
    wait_until(lambda: not any(t.name.startswith("pv-restart-") for t in threading.enumerate()), WAIT_S,
               what="the pending restart gave up")
    assert len(slot.launcher.processes) == 1 and slot.worker.state is State.STOPPED


def test_stop_during_a_handshake_never_lets_the_process_serve(slots: list[Slot], tmp_path: Path) -> None:
    slot = make(slots, tmp_path)
    slot.launcher.handshakes.append("block")
    slot.worker.start()
    assert slot.launcher.handshake_entered.wait(WAIT_S)
    stopper = threading.Thread(target=slot.worker.stop, args=(0.1,))
    stopper.start()
    wait_until(lambda: slot.worker.state is State.STOPPED, WAIT_S, what="stopped")
    slot.launcher.release_handshake()
    stopper.join(WAIT_S)
    wait_until(lambda: slot.worker.first_attempt_done.is_set(), WAIT_S, what="start attempt over")
    assert slot.worker.state is State.STOPPED and State.RUNNING not in slot.states()
    assert not slot.launcher.processes[0].alive


def test_timed_out_call_recycles_without_counting_as_a_crash(slots: list[Slot], tmp_path: Path) -> None:
    slot = make(slots, tmp_path)
    slot.worker.start()
    slot.wait_for(State.RUNNING, "worker ready")
    slot.launcher.processes[0].calls = "hang"
    outcome = slot.worker.call(CallRequest(phase="execute"), 0.01)
    assert outcome.error_code == ErrorCode.TIMEOUT.value and outcome.details["timed_out"] is True
    wait_until(lambda: len(slot.launcher.processes) == 2 and slot.worker.state is State.RUNNING, WAIT_S,
               what="recycled worker ready")
    assert slot.worker.counters["timeouts"] == 1 and slot.worker.counters["crashes"] == 0
    assert slot.worker.crash_loop.recent == 0
    assert slot.worker.last_error is not None and slot.worker.last_error["code"] == ErrorCode.TIMEOUT.value
    assert any(e.kind == "state" and e.reason.startswith("recycling:") and e.new_state is State.BACKOFF
               for e in slot.events)


def test_lost_heartbeat_recycles_the_process(slots: list[Slot], tmp_path: Path) -> None:
    slot = make(slots, tmp_path, heartbeat_interval_ms=1, heartbeat_grace_ms=1)
    slot.launcher.on_launch = lambda process: setattr(process, "pongs", len(slot.launcher.processes) > 1)
    slot.worker.start()
    wait_until(lambda: len(slot.launcher.processes) == 2 and slot.worker.state is State.RUNNING, WAIT_S,
               what="worker replaced after its heartbeat was lost")
    assert slot.worker.last_error is not None
    assert slot.worker.last_error["code"] == ErrorCode.HEARTBEAT_LOST.value


def test_a_stale_generations_exit_is_ignored(slots: list[Slot], tmp_path: Path) -> None:
    slot = make(slots, tmp_path)
    slot.worker.start()
    slot.wait_for(State.RUNNING, "worker ready")
    first = slot.launcher.processes[0]
    first.crash()
    wait_until(lambda: len(slot.launcher.processes) == 2 and slot.worker.state is State.RUNNING, WAIT_S,
               what="restarted worker ready")
    seen = len(slot.events)
    first.report_exit_again()  # a late, duplicate report from the first process
    assert slot.worker.state is State.RUNNING
    assert slot.worker.pid == slot.launcher.processes[1].pid
    assert slot.worker.counters["crashes"] == 1 and len(slot.events) == seen


def test_missing_interpreter_makes_the_worker_invalid(slots: list[Slot], tmp_path: Path) -> None:
    slot = make(slots, tmp_path)
    slot.spec.python.unlink()
    slot.worker.start()
    slot.wait_for(State.INVALID, "worker invalid")
    assert slot.launcher.processes == [] and slot.worker.first_attempt_done.is_set()
    assert slot.worker.first_failure is not None and "reinstall" in slot.worker.first_failure.message


def test_illegal_transitions_are_refused_loudly(slots: list[Slot], tmp_path: Path) -> None:
    slot = make(slots, tmp_path)
    slot.worker.start()
    slot.wait_for(State.RUNNING, "worker ready")
    with pytest.raises(IllegalTransition, match="running -> installed"):
        slot.worker.machine.transition(State.INSTALLED, "nonsense")
    assert slot.worker.state is State.RUNNING
    # A restart always goes through STARTING: a process is never ready straight out of a backoff.
    with pytest.raises(IllegalTransition):
        check_transition(State.BACKOFF, State.RUNNING)
    assert check_transition(State.BACKOFF, State.STARTING) is State.STARTING
    assert set(TRANSITIONS) == set(State)


def test_a_new_worker_prepares_segments_of_the_size_the_station_calls_carry(slots: list[Slot], tmp_path: Path) -> None:
    # A switch starts the new version's workers: their first calls should find faulted-in segments
    # of the camera's size instead of making one each.
    station = LastImageSize()
    for name in ("old", "new", "alone"):
        (tmp_path / name).mkdir()
    old = make(slots, tmp_path / "old", image_size=station, shm_spares_per_worker=1)
    old.worker.start()
    old.wait_for(State.RUNNING, "the old version's worker ready")
    frame = ImageInput(array=np.zeros((24, 32, 3), dtype=np.uint8))
    assert old.worker.call(CallRequest(phase="execute", image=frame), 5.0).ok
    assert station.shape == (24, 32, 3)

    new = make(slots, tmp_path / "new", image_size=station, shm_spares_per_worker=1)
    new.worker.start()
    new.wait_for(State.RUNNING, "the new version's worker ready")
    handoff = new.worker.handoff
    assert handoff is not None
    pool = wait_until(lambda: handoff.pool if handoff.pool is not None and handoff.pool.spare_count else None,
                      WAIT_S, what="spare segments prepared before the first call")
    spare = pool.take(24, 32, 3)  # a spare of exactly the station's size is ready
    assert spare is not None
    pool.retire([spare])

    # Without a size noted anywhere nothing is prepared: the first image decides.
    alone = make(slots, tmp_path / "alone", image_size=LastImageSize(), shm_spares_per_worker=1)
    alone.worker.start()
    alone.wait_for(State.RUNNING, "a worker of a station without calls ready")
    assert alone.worker.handoff is not None and alone.worker.handoff.pool is None
