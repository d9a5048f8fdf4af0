"""Supervision with real workers: one deadline per call, per-call recycles kept
out of the crash loop, capped stderr, get_info for our workers, [runner] notes in worker.log, a short
crash-loop reason, self-healing resume, and runtime folders of killed daemons removed."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from procvision_algorithm_sdk.client import iter_capped_lines
from runner.errors import RunnerError
from runner.routing.router import Router
from runner.supervision import CallRequest, State, Supervisor, VersionPool
from runner.supervision.runtime_dirs import (
    OWNER_FILE,
    RUNTIME_PREFIX,
    create_runtime_dir,
    owner_alive,
    remove_orphaned_runtime_dirs,
)
from tests.runner.supervision_support import ALGO, StartFn, fast_settings, pid_alive, wait_serving
from tests.support.deploy import REPO, Deployer, deployer  # noqa: F401 - fixture
from tests.support.routing_fixtures import RoutingEnv, routing_env, routing_settings  # noqa: F401
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)



def _execute(pool: VersionPool, timeout_s: float | None = None, **params: Any) -> Any:
    return pool.call(CallRequest("execute", user_params=params), timeout_s)


def _log_text(pool: VersionPool) -> str:
    return pool.log.path.read_text(encoding="utf-8", errors="replace") if pool.log.path.is_file() else ""


# --- 1. one deadline per call ------------------------------------------------------------------


def test_hung_calls_each_get_1005_once_and_never_fail_the_version(start: StartFn) -> None:
    _, pool, events = start(execute_timeout_ms=600, max_retries=2, crash_loop_max=1)
    pids = set()
    for _ in range(3):
        # The call's deadline includes waiting for the restart: start each once a worker is up.
        wait_serving(pool)
        out = _execute(pool, mode="hang")
        assert (out.status, out.error_code, out.retries) == ("ERROR", "1005", 0), out
        assert "timeout of 600 ms" in out.message and out.details["timed_out"] is True
        pids.add(out.worker_pid)
    counters = pool.status()["counters"]
    assert counters["timeouts"] == 3 and counters["calls"] == 3  # one attempt per call
    assert counters["crashes"] == 0
    assert pool.state is not State.FAILED and not any(e.kind == "failed" for e in events)
    # The last hang recycled the worker: wait for its replacement, or this call's 600 ms deadline
    # would be spent waiting for a restart that a busy machine cannot finish that fast.
    wait_serving(pool)
    ok = _execute(pool)
    assert ok.status == "OK" and ok.worker_pid not in pids, ok
    assert not any(pid_alive(p) for p in pids if p is not None)


def test_queued_call_expires_at_its_own_deadline(start: StartFn) -> None:
    _, pool, _ = start(max_retries=2)
    hung: list[Any] = []
    thread = threading.Thread(target=lambda: hung.append(_execute(pool, 60.0, mode="hang")))
    thread.start()
    wait_until(lambda: pool.workers[0].busy_request_id is not None, what="hung call running")
    hung_pid = pool.workers[0].pid
    out = _execute(pool, 0.5)
    assert (out.status, out.error_code) == ("ERROR", "1005"), out
    assert out.details["queued"] is True and "waiting for a free worker" in out.message
    assert out.latency_ms >= 500
    assert thread.is_alive() and not hung  # it expired on its own deadline, not the hung call's
    assert hung_pid is not None
    os.kill(hung_pid, signal.SIGKILL)
    thread.join(30)
    assert hung and hung[0].error_code == "1011"
    assert _execute(pool).status == "OK"


def test_recoverable_errors_retry_only_within_the_deadline(start: StartFn, tmp_path: Path) -> None:
    # The algorithm counts its attempts in files of this test's folder, which a boxed worker cannot see.
    _, pool, _ = start(max_retries=5, sandbox="off")
    ok = _execute(pool, mode="recoverable", counter=str(tmp_path / "a"), fail_times=2)
    assert ok.status == "OK" and ok.retries == 2
    # Each attempt sleeps 0.5 s before failing: a 3 s budget leaves room for six at most (fewer on a
    # busy machine), far below the 21 that max_retries allows, and the last one may run out of time
    # (1005) instead of failing retryably.
    source = ALGO.replace('''            if mode == "recoverable":''', '''            if mode == "recoverable":
                time.sleep(float(user_params.get("sleep", 0)))''')
    _, slow_pool, _ = start(source, max_retries=20, sandbox="off")
    out = _execute(slow_pool, 3.0, mode="recoverable", counter=str(tmp_path / "b"), fail_times=99, sleep=0.5)
    assert out.status == "ERROR" and (out.details.get("retryable") is True or out.error_code == "1005"), out
    assert 1 <= out.retries <= 6 and slow_pool.status()["counters"]["calls"] == out.retries + 1


def test_fatal_recycles_do_not_count_toward_the_crash_loop(start: StartFn) -> None:
    _, pool, events = start(max_retries=0, crash_loop_max=1)
    for _ in range(3):
        out = _execute(pool, mode="fatal")
        assert out.details.get("recycled") is True, out
    assert pool.state is not State.FAILED and not any(e.kind == "failed" for e in events)
    assert _execute(pool).status == "OK"


# --- 2. stderr ---------------------------------------------------------------------------------


def test_capped_lines_drop_the_rest_of_a_long_line() -> None:
    data = b"short\n" + b"x" * 100_000 + b"\nafter\r\n" + b"y" * 50 + b"tail without newline"
    lines = list(iter_capped_lines(io.BufferedReader(io.BytesIO(data)), 1000))
    assert lines[0] == "short"
    assert lines[1].startswith("x" * 1000) and lines[1].endswith("[truncated 99000 bytes]")
    assert len(lines[1]) < 1100
    assert lines[2] == "after"
    assert lines[3] == "y" * 50 + "tail without newline"
    assert len(lines) == 4


def test_a_giant_stderr_line_is_capped_everywhere(start: StartFn) -> None:
    source = ALGO.replace('''            if mode == "crash":''', '''            if mode == "shout":
                sys.stderr.write("E" * (5 * 1024 * 1024) + "\\\\n")
                sys.stderr.flush()
                os._exit(5)
            if mode == "crash":''')
    _, pool, _ = start(source, max_retries=0)
    out = _execute(pool, mode="shout")
    assert out.error_code == "1011" and out.details["exit_code"] == 5, out.message[:500]
    assert len(out.message) < 1200
    assert max(len(line) for line in out.details["stderr_tail"]) < 9000
    assert any("truncated" in line for line in out.details["stderr_tail"])
    # The exit handler may still be recording the failure when the call returns.
    last = wait_until(lambda: pool.last_error, what="last_error recorded")
    assert len(str(last.get("reason"))) < 1200
    assert max(len(line) for line in last["stderr_tail"]) < 9000
    wait_until(lambda: "truncated" in _log_text(pool), what="capped line in worker.log")
    assert pool.log.path.stat().st_size < 200_000
    assert _execute(pool).status == "OK"


# --- 3. get_info -------------------------------------------------------------------------------


def test_our_workers_report_get_info(start: StartFn) -> None:
    _, pool, _ = start()
    assert pool.info is not None and pool.info["name"] == "algo" and pool.info["supported_pids"] == ["P1"]
    assert pool.status()["info_error"] is None
    assert pool.status()["counters"]["calls"] == 0  # fetched during start, not as a user call


def test_failing_get_info_is_recorded_not_fatal(start: StartFn) -> None:
    source = ALGO.replace('''    def get_info(self):
        return''', '''    def get_info(self):
        raise RuntimeError("info unavailable: config not loaded")
        return''')
    _, pool, _ = start(source)
    assert pool.state is State.RUNNING and pool.info is None
    error = pool.status()["info_error"]
    assert error is not None and "info unavailable" in error["reason"]
    wait_until(lambda: "[runner] [w0] get_info() failed" in _log_text(pool), what="note in worker.log")
    assert _execute(pool).status == "OK"


HANGS_IN_SECOND_GET_INFO = ALGO.replace('''    def get_info(self):
        return''', '''    _calls = 0

    def get_info(self):
        Algo._calls += 1
        if Algo._calls == 2:
            time.sleep(3600)
        return''')


def test_hung_get_info_recycles_once_and_the_start_still_succeeds(start: StartFn) -> None:
    # The adapter calls get_info once itself before its hello; the runner's call is the second.
    assert HANGS_IN_SECOND_GET_INFO != ALGO
    _, pool, events = start(HANGS_IN_SECOND_GET_INFO, info_timeout_ms=1000)
    assert pool.state is State.RUNNING and pool.info is None
    error = pool.status()["info_error"]
    assert error is not None and error["code"] == "1005" and "get_info()" in error["reason"]
    assert not any(e.kind in ("crash", "failed") for e in events)
    assert pool.status()["counters"]["restarts"] == 1
    assert _execute(pool).status == "OK"


# --- 4. [runner] notes -------------------------------------------------------------------------


def test_worker_log_has_runner_notes(start: StartFn) -> None:
    _, pool, _ = start(execute_timeout_ms=500, max_retries=0)
    assert _execute(pool, mode="crash").error_code == "1011"
    wait_serving(pool)
    assert _execute(pool, mode="hang").error_code == "1005"
    wait_serving(pool)
    assert _execute(pool).status == "OK"
    text = wait_until(lambda: (t := _log_text(pool)).count("restarting the worker process") >= 2 and t,
                    what="restart notes")
    assert "[runner] [w0] worker process ended (exit code 7)" in text
    assert "[runner] [w0] recycling pid" in text and "1005 timeout" in text
    assert "[runner] [w0] restart #1 in" in text and "[runner] [w0] restart #2 in" in text


def test_a_start_that_fails_is_noted_in_the_worker_log(deployer: Deployer) -> None:  # noqa: F811
    dep = deployer.deploy("algo", "1.2.0", LOAD_FAILS)
    sup = Supervisor(fast_settings(deployer.layout.root), deployer.layout)
    try:
        with pytest.raises(RunnerError) as info:
            sup.start(dep.spec())
        assert "licence server unreachable" in info.value.message
        pool = sup.get("algo", "1.2.0")
        assert pool is not None and pool.state is State.FAILED
        text = _log_text(pool)
        assert "[runner] FAILED, start given up" in text and "licence server unreachable" in text
        assert "[runner] [w0] worker process ended (stopped by the runner)" in text
    finally:
        sup.shutdown(timeout_s=1.0)


# --- 5. crash-loop reason ----------------------------------------------------------------------

LOAD_FAILS = '''
def _load_licence():
    raise SystemExit("licence server unreachable")


_load_licence()
'''


def test_crash_loop_reason_names_the_latest_failure_briefly(start: StartFn) -> None:
    _, pool, _ = start(LOAD_FAILS, wait_ready=False, crash_loop_max=2)
    wait_until(lambda: pool.state is State.FAILED, what="FAILED after crash loop")
    reason = str((pool.last_error or {}).get("reason"))
    assert reason.startswith("crash loop: more than 2 failures"), reason
    assert "licence server unreachable" in reason and "\n" not in reason and len(reason) < 700
    assert "SIGKILL" not in reason
    text = _log_text(pool)
    assert "[runner] [w0] FAILED, no more restarts" in text
    assert text.count("[runner] [w0] worker process ended") == 3


# --- 6. resume heals -----------------------------------------------------------------------------


def test_resume_keeps_retrying_a_version_until_its_cause_is_gone(routing_env: RoutingEnv,  # noqa: F811
                                                                tmp_path: Path) -> None:
    env = routing_env
    flag = tmp_path / "camera-ready"
    flag.touch()
    gate = f'''
import os as _os
if not _os.path.exists({str(flag)!r}):
    raise SystemExit("camera not connected yet")
'''
    env.deploy("1.0.0", source=gate + __import__("tests.support.routing_fixtures",
                                                 fromlist=["ALGO"]).ALGO)
    env.router.activate("algo", "1.0.0", ["P1"])
    env.supervisor.shutdown(timeout_s=2.0)  # the daemon goes down
    flag.unlink()
    settings = routing_settings(env.layout.root, crash_loop_max=50, restart_backoff_initial_ms=100,
                                restart_backoff_max_ms=300)
    supervisor = Supervisor(settings, env.layout)
    try:
        fresh = Router(settings, env.layout, env.registry, supervisor, env.installer, session_grace_s=0.5,
                       drain_timeout_s=5.0)
        fresh.resume()
        assert "camera not connected yet" in fresh.resume_errors["algo 1.0.0"]["message"]
        pool = supervisor.get("algo", "1.0.0")
        assert pool is not None and pool.state is State.STARTING
        assert {p: b.version for p, b in fresh.active().items()} == {"P1": "1.0.0"}
        flag.touch()
        wait_until(lambda: pool.state is State.RUNNING, what="version recovered after the cause went away")
        assert fresh.execute("P1", CallRequest(phase="execute")).status == "OK"
    finally:
        supervisor.shutdown(timeout_s=2.0)


# --- 7. runtime folders of killed daemons ---------------------------------------------------------

_DAEMON = '''
import sys, time
from pathlib import Path
from runner.config import Settings
from runner.store.layout import RootLayout
from runner.supervision import Supervisor
root = Path(sys.argv[1])
sup = Supervisor(Settings(root=root), RootLayout(root))
print(sup.runtime_dir, flush=True)
time.sleep(120)
'''


def test_runtime_folder_of_a_killed_daemon_is_removed_at_next_start(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _DAEMON, str(tmp_path / "root")], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        dead_dir = Path(proc.stdout.readline().strip())
        assert (dead_dir / OWNER_FILE).read_text().split()[0] == str(proc.pid)
        assert owner_alive(dead_dir) is True
    finally:
        proc.kill()  # SIGKILL: the daemon cannot clean up
        proc.wait(10)
    # (A supervisor started meanwhile by a test in another xdist worker may remove it first.)
    assert not dead_dir.exists() or owner_alive(dead_dir) is False
    unowned = dead_dir.parent / f"procvision-runner-test-unowned-{os.getpid()}-{id(proc)}"
    unowned.mkdir()
    try:
        sup = Supervisor(fast_settings(tmp_path / "root2"), _layout(tmp_path / "root2"))
        try:
            assert not dead_dir.exists()
            assert sup.runtime_dir.is_dir() and owner_alive(sup.runtime_dir) is True
            assert unowned.is_dir()  # nobody can tell whose it is: left alone
            # A second supervisor in this (live) process leaves the first one's folder alone.
            other = Supervisor(fast_settings(tmp_path / "root3"), _layout(tmp_path / "root3"))
            other.shutdown(timeout_s=1.0)
            assert sup.runtime_dir.is_dir()
        finally:
            sup.shutdown(timeout_s=1.0)
        assert not sup.runtime_dir.exists()
    finally:
        unowned.rmdir()


def test_a_reused_pid_is_not_taken_for_the_owner(tmp_path: Path) -> None:
    folder = tmp_path / "procvision-runner-x"
    folder.mkdir()
    (folder / OWNER_FILE).write_text(f"{os.getpid()} 1\n")  # our pid, but a start time that is not ours
    assert owner_alive(folder) is False
    (folder / OWNER_FILE).write_text(f"{os.getpid()}\n")
    assert owner_alive(folder) is True


def test_only_folders_of_gone_owners_are_removed(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, timeout=60, check=True)
    dead_pid = int(gone.stdout)
    folders = {}
    for name, owner in (("dead", f"{dead_pid} 12345\n"), ("alive", None), ("unowned", "")):
        folder = tmp_path / f"{RUNTIME_PREFIX}{name}"
        folder.mkdir()
        (folder / "w0-g1").mkdir()
        if owner is not None and owner:
            (folder / OWNER_FILE).write_text(owner)
        folders[name] = folder
    own = create_runtime_dir(tmp_path)
    (folders["alive"] / OWNER_FILE).write_text((own / OWNER_FILE).read_text())
    (tmp_path / "unrelated").mkdir()
    removed = remove_orphaned_runtime_dirs(tmp_path, keep=own)
    assert removed == [folders["dead"]] and not folders["dead"].exists()
    assert folders["alive"].is_dir() and folders["unowned"].is_dir() and own.is_dir()
    assert (tmp_path / "unrelated").is_dir()


def _layout(root: Path) -> Any:
    from runner.store.layout import RootLayout

    return RootLayout(root)
