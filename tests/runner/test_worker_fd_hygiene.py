"""Finding 10: killing workers leaks no file descriptors in the daemon.

Each worker process has three pipes to the daemon. They are closed when the process ends (stdout and
stderr by their reader threads, stdin by the kill), not when the garbage collector happens to drop
the process object: 200 SIGKILLs from outside (half of them during a call, all while heartbeats
run), 200 restarts, and the daemon holds as many descriptors as before.

The cyclic garbage collector is off while it runs. A dead worker's objects sit in reference cycles
(the failure a waiting call or ping raised keeps a traceback whose frames refer back to the client,
and the client keeps the failure), so relying on the collector left a varying number of pipes open
at any time: what was measured in the field. Before the fix, 30 kills here left 30 pipes open.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
from pathlib import Path

from runner.supervision import Supervisor, VersionPool
from runner.supervision.dialects import CallRequest
from runner.supervision.states import State
from runner.supervision.worker import Worker
from tests.runner.supervision_support import ALGO, fast_settings
from tests.support.deploy import Deployer
from tests.support.waiting import wait_until

KILLS = 200


def open_fds() -> dict[str, int]:
    """This process's descriptors by kind (pipe, socket, file...)."""
    kinds: dict[str, int] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:
            continue  # the descriptor listdir itself used
        kind = target.split(":", 1)[0] if ":" in target and not target.startswith("/") else "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def kill_and_wait_restart(pool: VersionPool, worker: Worker, during_call: bool) -> None:
    """SIGKILL the worker (idle, or in the middle of a call) and wait for its replacement."""
    pid = worker.pid
    assert pid is not None
    caller = None
    if during_call:
        request = CallRequest(phase="execute", user_params={"mode": "slow", "seconds": 30})
        caller = threading.Thread(target=pool.call, args=(request, 60.0), daemon=True)
        caller.start()
        wait_until(lambda: worker.state is State.EXECUTING, 30.0, "the call to run")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: worker.state is State.RUNNING and worker.pid not in (None, pid), 60.0, "the worker to restart")
    if caller is not None:
        caller.join(30.0)
        assert not caller.is_alive()


def test_200_worker_kills_leave_no_descriptor_behind(deployer: Deployer, tmp_path: Path) -> None:
    dep = deployer.deploy("algo", "1.0.0", ALGO)
    settings = fast_settings(deployer.layout.root, crash_loop_max=10 * KILLS, restart_backoff_initial_ms=10,
                             restart_backoff_max_ms=20, heartbeat_interval_ms=50)
    sup = Supervisor(settings, deployer.layout)
    gc.disable()
    try:
        pool = sup.start(dep.spec())
        worker = pool.workers[0]
        for i in range(4):  # first restarts start threads and open logs that then stay
            kill_and_wait_restart(pool, worker, during_call=i % 2 == 1)
        before = open_fds()
        for i in range(KILLS):
            kill_and_wait_restart(pool, worker, during_call=i % 2 == 1)
        assert worker.counters["crashes"] == KILLS + 4
        # The last killed process's readers may still be closing their pipes: wait (bounded).
        def settled() -> dict[str, int] | None:
            now = open_fds()
            return now if now.get("pipe", 0) <= before.get("pipe", 0) else None

        after = wait_until(settled, 20.0, f"pipe descriptors back to {before.get('pipe', 0)} (now {open_fds()})")
        assert sum(after.values()) <= sum(before.values()), (before, after)
    finally:
        gc.enable()
        sup.shutdown(timeout_s=1.0)
