"""A worker's exit is seen when it happens (its pidfd says so), not at the next step of
``Popen.wait``'s growing sleeps; without a pidfd, or for a process already reaped, the wait still
answers with the exit code, and a process that keeps running is still waited for only up to the
timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from procvision_algorithm_sdk import worker_process
from procvision_algorithm_sdk.worker_process import WorkerProcess

needs_pidfd = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no os.pidfd_open here")


def _spawn(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, start_new_session=True)


@pytest.fixture
def waiting() -> Iterator[subprocess.Popen[bytes]]:
    """A process that exits with 3 once its stdin is closed."""
    proc = _spawn("import sys; sys.stdin.read(); sys.exit(3)")
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


@needs_pidfd
def test_the_pidfd_tells_an_ended_process_from_a_running_one(waiting: subprocess.Popen[bytes]) -> None:
    assert worker_process._exit_seen(waiting.pid, 0.05) is False
    assert waiting.stdin is not None
    waiting.stdin.close()
    assert worker_process._exit_seen(waiting.pid, 30.0) is True
    assert waiting.returncode is None  # seen ended, not reaped: the wait reaps it
    assert WorkerProcess(waiting).wait_exit(30.0) == 3


def test_a_process_that_keeps_running_is_waited_for_only_up_to_the_timeout(
        waiting: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float | None] = []
    real_wait = waiting.wait

    def recorded_wait(timeout: float | None = None) -> int:
        waits.append(timeout)
        return real_wait(timeout)

    monkeypatch.setattr(waiting, "wait", recorded_wait)
    assert WorkerProcess(waiting).wait_exit(0.1) is None
    if hasattr(os, "pidfd_open"):
        assert waits == [], "the pidfd already waited out the timeout; a second wait doubles it"
    else:
        assert waits == [0.1]
    assert waiting.poll() is None
    assert waiting.stdin is not None
    waiting.stdin.close()
    assert WorkerProcess(waiting).wait_exit(30.0) == 3


def test_an_already_reaped_process_answers_its_exit_code(waiting: subprocess.Popen[bytes]) -> None:
    assert waiting.stdin is not None
    waiting.stdin.close()
    waiting.wait(30)
    assert WorkerProcess(waiting).wait_exit(30.0) == 3


def test_without_pidfd_the_wait_still_sees_the_exit(waiting: subprocess.Popen[bytes],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    assert worker_process._exit_seen(waiting.pid, 0.05) is None
    assert WorkerProcess(waiting).wait_exit(0.05) is None
    assert waiting.stdin is not None
    waiting.stdin.close()
    assert WorkerProcess(waiting).wait_exit(30.0) == 3


def test_a_graceful_stop_returns_the_exit_code(waiting: subprocess.Popen[bytes]) -> None:
    def send_shutdown() -> None:
        assert waiting.stdin is not None
        waiting.stdin.close()

    assert WorkerProcess(waiting).stop(send_shutdown, timeout=30.0, term_timeout=5.0) == 3


def test_an_unbounded_wait_is_not_too_long_for_poll(waiting: subprocess.Popen[bytes]) -> None:
    assert waiting.stdin is not None
    waiting.stdin.close()
    assert WorkerProcess(waiting).wait_exit(float("inf")) == 3
