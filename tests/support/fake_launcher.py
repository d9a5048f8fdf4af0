"""A ``WorkerLauncher`` without processes, for the worker slot's state-machine tests.

Each launch makes a ``FakeProcess``: the test decides how its handshake goes (``handshakes``), how
calls and pings answer, and when it dies (``crash``). Exits are reported on a thread of their own,
as the real client's stdout reader does, so the slot sees the same interleavings it sees in
production, only in microseconds.
"""

from __future__ import annotations

import io
import itertools
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.client import CallTimedOut, HandshakeFailed, WorkerExited, WorkerFailure
from procvision_algorithm_sdk.errors import ErrorCode
from runner.supervision.dialects import Dialect
from runner.supervision.launcher import ExitCallback, Handshake, LaunchedProcess, WorkerLauncher
from runner.supervision.spec import WorkerSpec

_pids = itertools.count(50_000)


class FakeProcess:
    """One pretend worker process; satisfies ``launcher.ProcessClient``."""

    def __init__(self, on_exit: ExitCallback) -> None:
        self._on_exit = on_exit
        self._pid: int | None = None
        self._code: int | None = None
        self._exited = threading.Event()
        self._lock = threading.Lock()
        self._failure: WorkerFailure | None = None
        #: "ok" answers calls; "hang" answers none (the call runs into its deadline).
        self.calls = "ok"
        #: False: pings go unanswered (a wedged process).
        self.pongs = True
        self.exit_reports = 0

    # --- what the test does -------------------------------------------------------------------

    def spawn(self) -> None:
        self._pid = next(_pids)

    def crash(self, code: int = 1, message: str = "worker exited") -> None:
        """The process dies on its own with ``code``."""
        self._end(code, WorkerExited(message, ErrorCode.WORKER_CRASHED.value, exit_code=code))

    def report_exit_again(self) -> None:
        """Deliver this process's exit callback once more (a late duplicate from a reader thread)."""
        self._on_exit(self, self._code, "exited (late report)")

    # --- ProcessClient ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def alive(self) -> bool:
        return self._pid is not None and not self._exited.is_set()

    @property
    def stderr_tail(self) -> list[str]:
        return ["fake stderr line"]

    @property
    def failure(self) -> WorkerFailure | None:
        return self._failure

    def call(self, data: dict[str, Any], timeout: float, request_id: str | None = None,
             encoded: bytes | None = None) -> dict[str, Any]:
        # The runner sends the frame it encoded to check the call's size: it must be this call's.
        if encoded is not None and protocol.read_frame(io.BytesIO(encoded)) != protocol.make_call(request_id or "",
                                                                                                  data):
            raise AssertionError("the encoded frame is not this call's")
        if self.calls == "hang":
            if self._exited.wait(timeout):
                raise WorkerExited("worker exited during the call", exit_code=self._code)
            raise CallTimedOut(f"no reply within {timeout:.3f}s")
        if not self.alive:
            raise WorkerExited("worker is gone", exit_code=self._code)
        return protocol.make_result(request_id or "r", "OK", "", {"phase": data.get("phase"), "pid": self._pid})

    def ping(self, timeout: float) -> dict[str, Any]:
        if not self.pongs:
            if self._exited.wait(timeout):
                raise WorkerExited("worker exited", exit_code=self._code)
            raise CallTimedOut("no pong")
        return {"type": "pong"}

    def kill(self) -> None:
        self._end(-9, WorkerExited("killed", exit_code=-9))

    def wait(self, timeout: float) -> int | None:
        return self._code if self._exited.wait(timeout) else None

    def shutdown(self, timeout: float = 5.0, term_timeout: float = 3.0) -> int | None:
        self._end(0, None)
        return 0

    def _end(self, code: int, failure: WorkerFailure | None) -> None:
        with self._lock:
            if self._exited.is_set() or self._pid is None:
                return
            self._code, self._failure = code, failure
            self._exited.set()
        self.exit_reports += 1
        threading.Thread(target=self._on_exit, args=(self, code, f"exit code {code}"), daemon=True).start()


class FakeLaunched(LaunchedProcess):
    def __init__(self, client: FakeProcess) -> None:
        self.client: FakeProcess = client
        self.ended = False

    def memory_cause(self, exit_code: int | None, stderr_tail: list[str]) -> str | None:
        return None

    def memory_error_reply(self, details: dict[str, Any]) -> str | None:
        return None

    def end(self) -> None:
        self.ended = True
        self.client.kill()


class FakeLauncher(WorkerLauncher):
    """Launches ``FakeProcess``es. ``handshakes`` scripts the next handshakes ("ok", "fail" or
    "block": waits until ``release_handshake``); when it is empty every handshake succeeds."""

    def __init__(self) -> None:
        self.launched: list[FakeLaunched] = []
        self.handshakes: deque[str] = deque()
        self.handshake_entered = threading.Event()
        self._release = threading.Event()
        self.on_launch: Callable[[FakeProcess], None] | None = None

    @property
    def processes(self) -> list[FakeProcess]:
        return [launched.client for launched in self.launched]

    def release_handshake(self) -> None:
        self._release.set()

    def launch(self, spec: WorkerSpec, index: int, shm_dir: Path, on_stderr_line: Callable[[str], None],
               on_exit: ExitCallback) -> FakeLaunched:
        launched = FakeLaunched(FakeProcess(on_exit))
        self.launched.append(launched)
        if self.on_launch is not None:
            self.on_launch(launched.client)
        return launched

    def handshake(self, launched: LaunchedProcess) -> Handshake:
        assert isinstance(launched, FakeLaunched)
        process = launched.client
        process.spawn()
        how = self.handshakes.popleft() if self.handshakes else "ok"
        if how == "block":
            self.handshake_entered.set()
            self._release.wait(10.0)
        if how == "fail":
            process.crash(3, "cannot load")
            raise HandshakeFailed("algorithm failed to load: camera missing", ErrorCode.HANDSHAKE_FAILED.value,
                                  exit_code=3, stderr_tail=["RuntimeError: camera missing"])
        hello = {"type": "hello", "sdk_version": "fake", "capabilities": []}
        return Handshake(hello, Dialect.PROCVISION, {"name": "fake", "version": "1"})

    def status(self, limit_mb: int) -> dict[str, Any]:
        return {"mechanism": "none", "limit_mb": limit_mb, "enforced": False}
