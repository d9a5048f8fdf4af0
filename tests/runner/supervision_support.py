"""Shared pieces of the supervision tests: a configurable test algorithm, settings, helpers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from procvision_algorithm_sdk.shared_memory import SHM_DIR_ENV
from runner.config import Settings
from runner.supervision import State, Supervisor, SupervisorEvent, VersionPool
from tests.support.algorithms import algorithm_source
from tests.support.waiting import wait_until

#: What the ``start`` fixture (tests/runner/conftest.py) returns.
StartFn = Callable[..., tuple[Supervisor, VersionPool, list[SupervisorEvent]]]

#: One algorithm whose behaviour user_params choose, so one deployed version covers many cases.
#: ``mode`` values: ok, crash, hang, print, malformed, fatal, recoverable, leak, nan, slow, gate (runs until
#: a file named ``gate`` appears beside the module, at most a minute: the box shows the worker its own
#: package folder, read-only, and none of the test's other files).
ALGO = algorithm_source(
    class_name="Algo", info={"name": "algo", "version": "1.0.0", "supported_pids": ["P1"], "steps": []},
    imports="import os\nimport sys\nimport time\n\nimport numpy as np",
    sdk_names=["FatalError", "RecoverableError", "read_image_from_shared_memory"],
    prelude='''
        _LEAK = []
        _GATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gate")


        def _count(path):
            with open(path, "a", encoding="utf-8") as fh:
                fh.write("x")
            with open(path, encoding="utf-8") as fh:
                return len(fh.read())
    ''',
    pre_execute='return self._run("pre", session, user_params, shared_mem_id, image_meta)',
    execute='return self._run("execute", session, user_params, shared_mem_id, image_meta)',
    methods='''
        def _run(self, phase, session, user_params, shared_mem_id, image_meta):
            mode = user_params.get("mode", "ok")
            when = user_params.get("phase", phase)
            print("running", phase, mode, shared_mem_id, file=sys.stderr, flush=True)
            if when == phase:
                if mode == "crash":
                    print("about to crash", file=sys.stderr, flush=True)
                    os._exit(7)
                if mode == "hang":
                    time.sleep(3600)
                if mode == "print":
                    print("garbage on stdout")
                    sys.stdout.flush()
                    os.write(1, b"raw bytes on fd 1\\n")
                if mode == "malformed":
                    return "not a dict"
                if mode == "nan":
                    return {"status": "OK", "data": {"result_status": "OK", "value": float("nan")}}
                if mode == "fatal":
                    raise FatalError("model state corrupted")
                if mode == "recoverable":
                    counter = user_params["counter"]
                    if _count(counter) <= int(user_params.get("fail_times", 1)):
                        raise RecoverableError("camera busy, try again")
                if mode == "leak":
                    _LEAK.append(bytearray(int(user_params.get("bytes", 1 << 20))))
                if mode == "slow":
                    time.sleep(float(user_params.get("seconds", 0.5)))
                if mode == "gate":
                    until = time.monotonic() + 60
                    while not os.path.exists(_GATE) and time.monotonic() < until:
                        time.sleep(0.01)
            data = {"result_status": "OK", "pid": os.getpid(), "leaked": len(_LEAK)}
            if shared_mem_id:
                img = read_image_from_shared_memory(shared_mem_id, image_meta)
                data["shape"] = list(img.shape)
                data["sum"] = int(np.asarray(img, dtype=np.int64).sum())
                data["first"] = [int(v) for v in img[0, 0]]
            if session is not None and session.id:
                seen = session.get("seen", 0) + 1
                session.set("seen", seen)
                data["seen"] = seen
            return {"status": "OK", "message": "", "data": data}
    ''')

#: An algorithm that dies while loading (after printing a reason to stderr).
ALGO_DIES_LOADING = '''
import os
import sys

print("cannot open model weights: /nonexistent/model.bin", file=sys.stderr, flush=True)
os._exit(4)
'''


def fast_settings(root: Path, **overrides: Any) -> Settings:
    """Settings with short backoffs so failure paths run quickly.

    Deadlines stay generous: a call's deadline includes waiting for a restarting worker, which can take
    seconds on a busy machine, and a missed heartbeat would count as a crash. Tests of timeouts and
    heartbeats set their own small values.
    """
    values: dict[str, Any] = {
        "root": root, "handshake_timeout_ms": 60000, "info_timeout_ms": 30000,
        "pre_execute_timeout_ms": 30000, "execute_timeout_ms": 30000,
        "heartbeat_interval_ms": 200, "heartbeat_grace_ms": 10000, "max_retries": 2,
        "restart_backoff_initial_ms": 50, "restart_backoff_max_ms": 200, "restart_backoff_reset_after_s": 60,
        "crash_loop_max": 5, "crash_loop_window_s": 60, "shutdown_grace_s": 2.0, "queue_max": 4,
        "log_max_bytes": 1024 * 64, "log_backups": 2,
    }
    values.update(overrides)
    return Settings.model_validate(values)


def wait_serving(pool: VersionPool, what: str = "a worker ready to take calls") -> None:
    """Wait until ``pool`` has a ready worker (e.g. again after a recycle).

    A call's deadline includes the wait for a worker: a call with a short timeout made right after a
    recycle would measure how fast a worker restarts, which a busy machine cannot promise.
    """
    wait_until(lambda: pool.state in (State.RUNNING, State.EXECUTING), what=what)


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def shm_exists(segment_id: str) -> bool:
    return os.path.exists(os.path.join("/dev/shm", segment_id))


def private_segment_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str, *,
                           require_tmpfs: bool = False) -> Iterator[Path]:
    """Body of a fixture: a segment folder of the test's own, used by this process and its workers.

    On /dev/shm when writable (leases need a real tmpfs; with ``require_tmpfs`` the test is skipped
    otherwise). Fails the test if any segment is left behind.
    """
    tmpfs = os.access("/dev/shm", os.W_OK)
    if require_tmpfs and not tmpfs:
        pytest.skip("needs a writable /dev/shm")
    folder = (Path("/dev/shm") if tmpfs else tmp_path) / f"{prefix}-{os.getpid()}-{tmp_path.name}"
    folder.mkdir()
    monkeypatch.setenv(SHM_DIR_ENV, str(folder))
    yield folder
    leftovers = sorted(p.name for p in folder.iterdir())
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    assert not leftovers, f"segments left behind: {leftovers}"
