"""Zero-downtime switching with real workers: under load, failed switches, session stickiness, pruning."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import Counter
from typing import Any

import pytest

from runner.errors import RunnerError
from runner.routing.router import ExecutionResult
from runner.supervision.dialects import CallRequest
from tests.support.deploy import deployer  # noqa: F401  (fixture)
from tests.support.routing_fixtures import BROKEN, RoutingEnv, routing_env  # noqa: F401
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def env(routing_env: RoutingEnv) -> RoutingEnv:  # noqa: F811 - the imported fixture
    return routing_env


class Load:
    """Threads calling ``execute`` on one pid until stopped; every result and exception is kept."""

    def __init__(self, env: RoutingEnv, pid: str = "P1", threads: int = 4, **params: Any) -> None:
        self.env = env
        self.pid = pid
        self.params = params
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.results: list[ExecutionResult] = []
        self.started: list[float] = []  # when each result's call was made (monotonic), same order
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                result = self.env.router.execute(self.pid, CallRequest(phase="execute",
                                                                       user_params=dict(self.params)))
            except BaseException as exc:  # noqa: BLE001 - the test reports every failure kind
                with self.lock:
                    self.errors.append(exc)
                continue
            with self.lock:
                self.results.append(result)
                self.started.append(started)

    def count(self) -> int:
        with self.lock:
            return len(self.results) + len(self.errors)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        assert not any(t.is_alive() for t in self.threads), "a load thread did not finish"


def test_switch_under_continuous_load_fails_no_call(env: RoutingEnv) -> None:
    env.deploy("1.0.0")
    env.deploy("2.0.0")
    env.router.activate("algo", "1.0.0", ["P1"])
    old_pool = env.supervisor.get("algo", "1.0.0")
    assert old_pool is not None
    old_os_pids = {w.pid for w in old_pool.workers}

    with Load(env, sleep_ms=2) as load:
        wait_until(lambda: load.count() >= 150, what="150 calls on 1.0.0")
        env.router.switch("algo", "2.0.0", ["P1"])
        switched_at = time.monotonic()
        before = load.count()
        wait_until(lambda: load.count() >= before + 150, what="150 calls after the switch")

    assert load.errors == []
    statuses = Counter((r.status, r.error_code) for r in load.results)
    assert statuses == Counter({("OK", None): len(load.results)}), statuses
    served = Counter(r.served_by["version"] for r in load.results)
    assert served["1.0.0"] > 0 and served["2.0.0"] > 0, served
    assert len(load.results) >= 300
    # Once switched, nothing went back to the old version: no call made after the switch returned was
    # served by it (calls made before may finish later, in any order, on a busy machine).
    late_old = [r for r, started in zip(load.results, load.started, strict=True)
                if started > switched_at and r.served_by["version"] == "1.0.0"]
    assert late_old == []
    assert env.pool_state("1.0.0") == "stopped"
    for os_pid in old_os_pids:
        assert os_pid is not None
        wait_until(functools.partial(_dead, os_pid), what=f"old worker {os_pid} gone")
    assert env.router.active()["P1"].version == "2.0.0"
    assert env.router.in_flight("algo", "1.0.0") == 0


def _dead(os_pid: int) -> bool:
    """True once the process is gone (or only a zombie)."""
    try:
        os.kill(os_pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{os_pid}/stat") as fh:
            return fh.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_failed_switch_keeps_old_version_serving(env: RoutingEnv) -> None:
    env.deploy("1.0.0")
    env.deploy("2.0.0", source=BROKEN)
    env.router.activate("algo", "1.0.0", ["P1"])
    before = env.layout.active_file("P1").read_text()

    with Load(env, threads=2) as load:
        wait_until(lambda: load.count() >= 20, what="calls before the switch")
        with pytest.raises(RunnerError) as info:
            env.router.switch("algo", "2.0.0", ["P1"])
        after = load.count()
        wait_until(lambda: load.count() >= after + 20, what="calls after the failed switch")

    assert "could not start" in info.value.message and "nothing was changed" in info.value.message
    assert "broken on purpose" in info.value.message
    assert load.errors == []
    assert {r.served_by["version"] for r in load.results} == {"1.0.0"}
    assert all(r.status == "OK" for r in load.results)
    assert env.layout.active_file("P1").read_text() == before
    assert env.router.active()["P1"].version == "1.0.0"
    assert env.pool_state("1.0.0") == "running"
    assert [b.version for b in env.router.history("P1")] == ["1.0.0"]


def test_session_stays_on_its_version_across_a_switch(env: RoutingEnv) -> None:
    env.deploy("1.0.0")
    env.deploy("2.0.0")
    # Long enough that the old session's next step arrives in time even on a loaded machine; the
    # switch still ends as soon as that session ends.
    env.router.session_grace_s = 20.0
    env.router.activate("algo", "1.0.0", ["P1"])
    pre = env.router.execute("P1", CallRequest(phase="pre", session_id="s-old"))
    assert pre.status == "OK" and pre.served_by["version"] == "1.0.0"

    switched = threading.Event()
    failure: list[BaseException] = []

    def do_switch() -> None:
        try:
            env.router.switch("algo", "2.0.0", ["P1"])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failure.append(exc)
        finally:
            switched.set()

    thread = threading.Thread(target=do_switch, daemon=True)
    thread.start()
    wait_until(lambda: env.router.active()["P1"].version == "2.0.0", what="the flip")

    # A new session goes to the new version; the old session finishes where it began.
    new = env.router.execute("P1", CallRequest(phase="pre", session_id="s-new"))
    assert new.served_by["version"] == "2.0.0"
    old = env.router.execute("P1", CallRequest(phase="execute", session_id="s-old", end_session=True))
    assert old.status == "OK", old.message
    assert old.served_by["version"] == "1.0.0"
    assert old.data["debug"]["pre_version"] == "1.0.0"
    assert old.data["debug"]["pre_os_pid"] == pre.data["os_pid"]

    assert switched.wait(120)
    thread.join(120)
    assert failure == []
    assert env.pool_state("1.0.0") == "stopped"
    later = env.router.execute("P1", CallRequest(phase="execute", session_id="s-new"))
    assert later.served_by["version"] == "2.0.0" and later.data["debug"]["pre_version"] == "2.0.0"


def test_switch_of_a_bound_pid_to_an_unsupported_pid_is_refused(env: RoutingEnv) -> None:
    env.deploy("1.0.0")
    env.deploy("2.0.0", pids=["P2"])
    env.router.activate("algo", "1.0.0", ["P1"])
    with pytest.raises(RunnerError) as info:
        env.router.switch("algo", "2.0.0", ["P1"])
    assert info.value.code == "2006"
    assert env.pool_state("2.0.0") is None


def test_switch_prunes_versions_beyond_retention(env: RoutingEnv, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="runner.routing")
    for i in range(1, 6):
        env.deploy(f"{i}.0.0")
    env.deploy("9.0.0")  # installed, never activated: must survive pruning
    env.router.activate("algo", "1.0.0", ["P1"])
    pruned: list[tuple[str, str]] = []
    for i in range(2, 6):
        env.router.switch("algo", f"{i}.0.0", ["P1"], on_pruned=pruned.append)
    kept = sorted(r["version"] for r in env.registry.list(name="algo"))
    # retain_versions=3: the three most recently used plus the never-activated one.
    assert kept == ["3.0.0", "4.0.0", "5.0.0", "9.0.0"]
    # Said when it happens: to the caller (the API answer, the CLI line) and in the daemon's log.
    assert pruned == [("algo", "1.0.0"), ("algo", "2.0.0")]
    logged = [r.getMessage() for r in caplog.records if "retain_versions" in r.getMessage()]
    assert any("algo 1.0.0" in m for m in logged) and any("algo 2.0.0" in m for m in logged), logged
    assert not env.layout.version_dir("algo", "1.0.0").exists()
    assert [b.version for b in env.router.rollback(["P1"])] == ["4.0.0"]


def test_detection_flows_under_load_never_mix_versions(env: RoutingEnv) -> None:
    """pre + execute flows with their own session ids from 4 threads while P1 switches 1.0.0 -> 2.0.0."""
    env.deploy("1.0.0")
    env.deploy("2.0.0")
    env.router.activate("algo", "1.0.0", ["P1"])
    stop = threading.Event()
    lock = threading.Lock()
    flows: list[tuple[ExecutionResult, ExecutionResult]] = []
    errors: list[BaseException] = []

    def run(thread: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            sid = f"t{thread}-{n}"
            try:
                pre = env.router.execute("P1", CallRequest(phase="pre", session_id=sid))
                exe = env.router.execute("P1", CallRequest(phase="execute", session_id=sid, end_session=True))
            except BaseException as exc:  # noqa: BLE001 - every failure kind is reported
                with lock:
                    errors.append(exc)
                continue
            with lock:
                flows.append((pre, exe))

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(flows) >= 60, what="flows on 1.0.0")
        env.router.switch("algo", "2.0.0", ["P1"])
        done = len(flows)
        wait_until(lambda: len(flows) >= done + 60, what="flows after the switch")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert all(p.status == "OK" and e.status == "OK" for p, e in flows)
    for pre, exe in flows:
        assert pre.served_by["version"] == exe.served_by["version"]
        assert exe.data["debug"]["pre_version"] == exe.served_by["version"]
        assert exe.data["debug"]["pre_os_pid"] == exe.served_by["worker_pid"]
    assert {e.served_by["version"] for _, e in flows} == {"1.0.0", "2.0.0"}
    assert env.pool_state("1.0.0") == "stopped"


@pytest.mark.parametrize(("grace_s", "expected"), [(60.0, "1.0.0"), (0.0, "2.0.0")])
def test_old_session_follows_grace_when_old_version_stays_up(env: RoutingEnv, grace_s: float,
                                                             expected: str) -> None:
    """P2 keeps 1.0.0 running, so only the session grace decides where P1's old session goes."""
    env.deploy("1.0.0")
    env.deploy("2.0.0")
    env.router.activate("algo", "1.0.0", ["P1", "P2"])
    env.router.execute("P1", CallRequest(phase="pre", session_id="s"))
    env.router.switch("algo", "2.0.0", ["P1"])
    assert env.pool_state("1.0.0") == "running"
    env.router.session_grace_s = grace_s
    result = env.router.execute("P1", CallRequest(phase="execute", session_id="s"))
    assert result.served_by["version"] == expected
    assert env.router.execute("P1", CallRequest(phase="execute", session_id="fresh")).served_by["version"] == "2.0.0"
