"""Supervision with real worker processes on our SDK: calls, crashes, hangs, heartbeats, restarts."""

from __future__ import annotations

import os
import re
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.supervision import CallRequest, ImageInput, State, Supervisor, SupervisorEvent, VersionPool
from runner.supervision.launch import LaunchedWorker, Launcher
from tests.runner.supervision_support import (
    ALGO,
    ALGO_DIES_LOADING,
    StartFn,
    fast_settings,
    pid_alive,
    shm_exists,
    wait_serving,
)
from tests.support.deploy import Deployer, deployer  # noqa: F401 - fixture
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)



def _pids(pool: VersionPool) -> list[int]:
    return [w.pid for w in pool.workers if w.pid is not None]


def _execute(pool: VersionPool, **params: Any) -> Any:
    return pool.call(CallRequest("execute", user_params=params))


def _segment_ids(pool: VersionPool) -> list[str]:
    return re.findall(r"pvshm-[0-9a-f]+", "\n".join(pool.stderr_tail(200)))


def test_call_carries_pixels_and_frees_the_segment(start: StartFn) -> None:
    _, pool, _ = start()
    assert pool.state is State.RUNNING and pool.dialect is not None and pool.dialect.value == "procvision"
    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    out = pool.call(CallRequest("execute", image=ImageInput(array=img)))
    assert out.status == "OK", out
    assert out.data["shape"] == [4, 5, 3] and out.data["sum"] == int(img.astype(np.int64).sum())
    assert out.worker_pid == _pids(pool)[0]
    # stderr is read by another thread: wait for the worker's line naming the segment.
    ids = wait_until(lambda: _segment_ids(pool), what="segment id in stderr")
    assert not any(shm_exists(i) for i in ids)
    status = pool.status()
    assert status["counters"]["calls"] == 1 and status["hello"]["sdk_version"]
    log = pool.log.path
    wait_until(lambda: log.is_file() and "running execute ok" in log.read_text(), what="stderr in worker.log")


def test_crash_reports_exit_code_and_tail_then_recovers(start: StartFn) -> None:
    _, pool, events = start()
    old = _pids(pool)[0]
    img = np.ones((3, 3, 3), dtype=np.uint8)
    out = pool.call(CallRequest("execute", user_params={"mode": "crash"}, image=ImageInput(array=img)))
    assert out.status == "ERROR" and out.error_code == "1011", out
    assert out.details["exit_code"] == 7
    assert any("about to crash" in line for line in out.details["stderr_tail"])
    assert "exit" in out.message
    # The image of the crashed call is freed too.
    ids = wait_until(lambda: _segment_ids(pool), what="segment id in stderr")
    assert not any(shm_exists(i) for i in ids)
    nxt = _execute(pool)
    assert nxt.status == "OK" and nxt.worker_pid != old, nxt
    assert not pid_alive(old)
    assert any(e.kind == "crash" for e in events)
    assert pool.status()["workers"][0]["restarts"] == 1


def test_hang_in_execute_times_out_and_next_call_runs_on_a_new_worker(start: StartFn) -> None:
    _, pool, _ = start(execute_timeout_ms=1000, max_retries=0)
    old = _pids(pool)[0]
    out = _execute(pool, mode="hang")
    assert out.status == "ERROR" and out.error_code == "1005" and out.error_name == "timeout"
    wait_until(lambda: not pid_alive(old), what="hung worker killed")
    wait_serving(pool)  # the call's 1 s deadline must not be spent waiting for the restart
    nxt = _execute(pool)
    assert nxt.status == "OK" and nxt.worker_pid != old
    assert pool.status()["counters"]["timeouts"] == 1


def test_hang_only_in_pre_execute(start: StartFn) -> None:
    _, pool, _ = start(pre_execute_timeout_ms=1000, max_retries=0)
    out = pool.call(CallRequest("pre", user_params={"mode": "hang", "phase": "pre"}))
    assert out.error_code == "1005"
    wait_serving(pool)
    out = pool.call(CallRequest("execute", user_params={"mode": "hang", "phase": "pre"}))
    assert out.status == "OK", out


def test_a_timeout_uses_up_the_call_and_is_not_retried(start: StartFn) -> None:
    _, pool, _ = start(execute_timeout_ms=500, max_retries=2)
    out = _execute(pool, mode="hang")
    assert out.error_code == "1005" and out.retries == 0 and out.latency_ms >= 500
    assert pool.status()["counters"]["timeouts"] == 1 and pool.status()["counters"]["calls"] == 1


def test_stdout_prints_do_not_break_the_protocol(start: StartFn) -> None:
    _, pool, _ = start()
    out = _execute(pool, mode="print")
    assert out.status == "OK", out
    wait_until(lambda: any("garbage on stdout" in line for line in pool.stderr_tail(50)), what="print in log")


def test_malformed_result_is_an_error_and_worker_survives(start: StartFn) -> None:
    _, pool, _ = start()
    pid = _pids(pool)[0]
    out = _execute(pool, mode="malformed")
    assert out.status == "ERROR" and out.error_code is not None
    out = _execute(pool, mode="nan")
    assert out.status == "ERROR" and out.error_code is not None
    assert _execute(pool).worker_pid == pid


def test_fatal_error_recycles_the_worker(start: StartFn) -> None:
    _, pool, _ = start(max_retries=0)
    pid = _pids(pool)[0]
    out = _execute(pool, mode="fatal")
    assert out.status == "ERROR" and out.details.get("fatal") is True and out.details.get("recycled") is True
    assert "model state corrupted" in out.message
    nxt = _execute(pool)
    assert nxt.status == "OK" and nxt.worker_pid != pid
    wait_until(lambda: not pid_alive(pid), what="old worker gone")


def test_recoverable_error_is_retried(start: StartFn, tmp_path: Path) -> None:
    # The algorithm counts its attempts in a file of this test's folder, which a boxed worker cannot see.
    _, pool, _ = start(max_retries=2, sandbox="off")
    counter = str(tmp_path / "counter")
    out = _execute(pool, mode="recoverable", counter=counter, fail_times=1)
    assert out.status == "OK" and out.retries == 1
    out = _execute(pool, mode="recoverable", counter=str(tmp_path / "c2"), fail_times=5)
    assert out.status == "ERROR" and out.retries == 2 and out.details.get("retryable") is True


def test_memory_leak_stays_in_the_worker_and_restart_clears_it(start: StartFn) -> None:
    _, pool, _ = start()
    for expected in (1, 2, 3):
        out = _execute(pool, mode="leak", bytes=8 << 20)
        assert out.status == "OK" and out.data["leaked"] == expected
    assert _execute(pool, mode="crash").error_code == "1011"
    assert _execute(pool, mode="leak", bytes=1 << 20).data["leaked"] == 1


def test_sigstopped_worker_is_detected_by_heartbeat_and_replaced(start: StartFn) -> None:
    _, pool, events = start(heartbeat_interval_ms=100, heartbeat_grace_ms=500)
    old = _pids(pool)[0]
    # The whole process group: a boxed worker's pid is its bubblewrap monitor, Python runs below it.
    os.killpg(old, signal.SIGSTOP)
    try:
        wait_until(lambda: pool.workers[0].pid not in (None, old) and pool.state is State.RUNNING,
                 what="heartbeat restart")
    finally:
        if pid_alive(old):
            os.killpg(old, signal.SIGCONT)
    assert any(e.kind == "recycle" and e.details.get("code") == "1006" for e in events)
    assert (pool.last_error or {}).get("code") == "1006"
    wait_until(lambda: not pid_alive(old), what="stopped worker killed")
    assert _execute(pool).status == "OK"


class _PongCountingLauncher(Launcher):
    """The supervisor's own launcher, counting the pongs its workers' heartbeats receive."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.inherited_environment, None)
        self.pongs = 0

    def launch(self, *args: Any, **kwargs: Any) -> LaunchedWorker:
        launched = super().launch(*args, **kwargs)
        launched.client = _PongCountingClient(launched.client, self)  # type: ignore[assignment]
        return launched


class _PongCountingClient:
    def __init__(self, inner: Any, counter: _PongCountingLauncher) -> None:
        self._inner, self._counter = inner, counter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def ping(self, timeout: float) -> Any:
        reply = self._inner.ping(timeout)
        self._counter.pongs += 1
        return reply


def test_busy_worker_still_answers_heartbeats(deployer: Deployer) -> None:  # noqa: F811
    # Pongs are counted while the call runs, seen from outside the worker: the call lasts until five
    # came back, however long a busy machine takes for them, and the worker is neither recycled nor
    # replaced for its busy spell.
    dep = deployer.deploy("algo", "1.0.0", ALGO)
    settings = fast_settings(deployer.layout.root, heartbeat_interval_ms=100, heartbeat_grace_ms=2000,
                             execute_timeout_ms=60000)
    launcher = _PongCountingLauncher(settings)
    events: list[SupervisorEvent] = []
    sup = Supervisor(settings, deployer.layout, events.append, launcher=launcher)
    try:
        pool = sup.start(dep.spec())
        pid = _pids(pool)[0]
        outcomes: list[Any] = []
        call = threading.Thread(target=lambda: outcomes.append(_execute(pool, mode="gate")))
        call.start()
        wait_until(lambda: any("running execute gate" in line for line in pool.stderr_tail(50)),
                   what="the call to be running in the worker")
        before = launcher.pongs
        wait_until(lambda: launcher.pongs >= before + 5, what="five pongs while the call runs")
        assert call.is_alive(), "the pongs came while the call was running"
        (dep.package_dir / "gate").touch()
        call.join(60)
        assert outcomes and outcomes[0].status == "OK" and outcomes[0].worker_pid == pid, outcomes
        assert not any(e.kind == "recycle" for e in events)
    finally:
        sup.shutdown(timeout_s=1.0)


def test_worker_dying_while_loading_fails_start_with_cause(start: StartFn) -> None:
    with pytest.raises(RunnerError) as info:
        start(ALGO_DIES_LOADING)
    err = info.value
    assert err.code == "1017" and err.name == "handshake_failed"
    assert err.details["exit_code"] == 4
    assert any("cannot open model weights" in line for line in err.details["stderr_tail"])


def test_crash_loop_ends_in_failed_with_cause_until_explicit_start(start: StartFn, tmp_path: Path) -> None:
    # Crashes 0.3 s after every start, without any call.
    source = ALGO + '''
import threading
def _die():
    time.sleep(0.3)
    print("watchdog: lost connection to camera", file=sys.stderr, flush=True)
    os._exit(9)
threading.Thread(target=_die, daemon=True).start()
'''
    sup, pool, events = start(source, crash_loop_max=2)
    wait_until(lambda: pool.state is State.FAILED, what="FAILED after crash loop")
    last = pool.last_error or {}
    assert last["exit_code"] == 9 and "crash loop" in last["reason"]
    assert any("lost connection to camera" in line for line in last["stderr_tail"])
    assert any(e.kind == "failed" for e in events)
    assert not any(pid_alive(p) for p in _pids(pool))
    with pytest.raises(RunnerError) as info:
        _execute(pool)
    assert info.value.code == "1016"
    restarts = pool.status()["counters"]["restarts"]
    assert pool.state is State.FAILED and pool.status()["counters"]["restarts"] == restarts
    # An explicit start tries again (and the worker becomes ready before it crashes again).
    seen = len(events)
    sup.restart(pool.spec.name, pool.spec.version)
    assert any(e.kind == "state" and e.new_state is State.RUNNING for e in events[seen:])


def test_full_queue_rejects_at_once(start: StartFn) -> None:
    _, pool, _ = start(queue_max=1)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(_execute(pool, mode="slow", seconds=1.0)))]
    threads[0].start()
    wait_until(lambda: pool.workers[0].busy_request_id is not None, what="first call running")
    threads.append(threading.Thread(target=lambda: results.append(_execute(pool))))
    threads[1].start()
    wait_until(lambda: pool.queue_depth() == 1, what="second call queued")
    with pytest.raises(RunnerError) as info:
        _execute(pool)
    assert info.value.code == "1015" and info.value.name == "queue_full"
    for thread in threads:
        thread.join(30)
    assert [r.status for r in results] == ["OK", "OK"]
    assert pool.in_flight() == 0


def test_session_calls_stick_to_their_worker(start: StartFn) -> None:
    _, pool, _ = start(workers_per_version=2)
    wait_until(lambda: all(w.state is State.RUNNING for w in pool.workers), what="both workers up")
    first = pool.call(CallRequest("execute", session_id="s1"))
    assert first.data["seen"] == 1
    results: list[Any] = []
    slow = threading.Thread(target=lambda: results.append(_execute(pool, mode="slow", seconds=1.0)))
    slow.start()
    wait_until(lambda: any(w.busy_request_id for w in pool.workers), what="slow call running")
    other = _execute(pool)  # goes to the idle worker
    again = pool.call(CallRequest("execute", session_id="s1"))
    slow.join(30)
    assert again.worker_pid == first.worker_pid and again.data["seen"] == 2
    assert {results[0].worker_pid, other.worker_pid} == set(_pids(pool))
    end = pool.call(CallRequest("execute", session_id="s1", end_session=True))
    assert end.data["seen"] == 3


def test_stop_drains_in_flight_calls_and_leaves_no_processes(start: StartFn) -> None:
    sup, pool, _ = start()
    pid = _pids(pool)[0]
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(_execute(pool, mode="slow", seconds=0.8)))]
    threads[0].start()
    wait_until(lambda: pool.workers[0].busy_request_id is not None, what="call running")
    threads.append(threading.Thread(target=lambda: results.append(_execute(pool))))
    threads[1].start()
    wait_until(lambda: pool.queue_depth() == 1, what="second call queued")
    sup.stop(pool.spec.name, pool.spec.version, drain_timeout_s=10)
    for thread in threads:
        thread.join(10)
    assert [r.status for r in results] == ["OK", "OK"]  # the running and the queued call both finished
    assert pool.state is State.STOPPED and not pid_alive(pid)
    with pytest.raises(RunnerError) as info:
        _execute(pool)
    assert info.value.code == "1016"


def test_shutdown_leaves_no_orphans_or_segments(start: StartFn) -> None:
    sup, pool, _ = start(workers_per_version=2)
    wait_until(lambda: all(w.state is State.RUNNING for w in pool.workers), what="both workers up")
    pids = _pids(pool)
    img = np.zeros((2, 2, 3), dtype=np.uint8)
    assert pool.call(CallRequest("execute", image=ImageInput(array=img))).status == "OK"
    ids = wait_until(lambda: _segment_ids(pool), what="segment id in stderr")
    sup.shutdown(timeout_s=2)
    assert not any(pid_alive(p) for p in pids)
    assert not sup.runtime_dir.exists()
    assert not any(shm_exists(i) for i in ids)
    assert pool.state is State.STOPPED


def test_package_in_a_subfolder_runs_with_scrubbed_environment(deployer: Deployer) -> None:  # noqa: F811
    source = ALGO.replace('data = {"result_status": "OK",',
                          'data = {"env": {k: os.environ.get(k) for k in ("PYTHONPATH", "PROC_ALGO_ROOT", '
                          '"PYTHONNOUSERSITE", "PROC_SHM_DIR")}, "cwd": os.getcwd(), "result_status": "OK",')
    dep = deployer.deploy("algo", "2.0.0", source, subfolder="project")
    sup = Supervisor(fast_settings(deployer.layout.root), deployer.layout,
                     base_env={**os.environ, "PYTHONPATH": "/nonexistent/leak"})
    try:
        pool = sup.start(dep.spec())
        out = _execute(pool)
        assert out.status == "OK", out
        env = out.data["env"]
        assert env["PYTHONPATH"] is None and env["PYTHONNOUSERSITE"] == "1"
        assert env["PROC_ALGO_ROOT"] == str(dep.package_dir) == out.data["cwd"]
        assert Path(env["PROC_SHM_DIR"]).is_relative_to(sup.runtime_dir)
    finally:
        sup.shutdown(timeout_s=1)


def test_unencodable_or_huge_requests_are_rejected_without_harming_the_worker(start: StartFn) -> None:
    _, pool, _ = start(max_frame_bytes=4096)
    pid = _pids(pool)[0]
    out = pool.call(CallRequest("execute", user_params={"x": float("nan")}))
    assert out.status == "ERROR" and out.error_code == "1003"
    out = pool.call(CallRequest("execute", user_params={"blob": "x" * 10000}))
    assert out.status == "ERROR" and out.error_code == "1013"
    ok = _execute(pool)
    assert ok.status == "OK" and ok.worker_pid == pid


def test_missing_interpreter_makes_the_version_invalid(deployer: Deployer) -> None:  # noqa: F811
    dep = deployer.deploy("algo", "3.0.0", ALGO)
    sup = Supervisor(fast_settings(deployer.layout.root), deployer.layout)
    try:
        spec = dep.spec()
        broken = type(spec)(spec.name, spec.version, spec.version_dir, spec.package_dir,
                            spec.version_dir / "no-venv" / "bin" / "python")
        with pytest.raises(RunnerError) as info:
            sup.start(broken)
        assert info.value.code == "1016" and "reinstall" in info.value.message
        pool = sup.get("algo", "3.0.0")
        assert pool is not None and pool.state is State.INVALID
        # Once fixed, an explicit start brings it up.
        assert sup.start(spec).state is State.RUNNING
    finally:
        sup.shutdown(timeout_s=1)
