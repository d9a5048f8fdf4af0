"""Ending an adapter's OS process: waiting for its exit, signalling it, killing its process group.

``AdapterClient`` (``client.py``) owns the conversation with the worker; this module owns the steps
that take the process down, so every way a worker ends (graceful shutdown, kill after a failed
handshake or a corrupt stream) goes through one place with bounded waits.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
from typing import Callable

#: Characters of the last stderr line quoted in an exit message.
_QUOTE_CHARS = 300
#: The wait for a process its pidfd already reported as ended (it only has to be reaped).
_REAP_S = 1.0


#: ``poll`` takes an int of milliseconds: longer waits are cut to this (~24.8 days).
_POLL_MAX_MS = 2**31 - 1


def _exit_seen(pid: int, timeout: float) -> bool | None:
    """Whether process ``pid`` ended within ``timeout`` s, told by its pidfd (Linux 5.3+).

    ``Popen.wait(timeout)`` polls with sleeps growing to 50 ms, so a worker that exits in 5 ms is
    seen after ~30 ms; every install's smoke test and every worker stop waited that long. None
    when there is no pidfd here (old kernel, no ``os.pidfd_open``) or the process is already
    reaped: the caller's ``Popen.wait`` then does the waiting or answers at once.
    """
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd = pidfd_open(pid)
    except OSError:
        return None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(min(max(0.0, timeout) * 1000, _POLL_MAX_MS)))
    finally:
        os.close(fd)


class WorkerProcess:
    """One spawned adapter process, started in its own session so its group id is its pid."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pgid = proc.pid

    def wait_exit(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the process to exit; its exit code or None."""
        if self.proc.returncode is None:
            seen = _exit_seen(self.proc.pid, timeout)
            if seen is False:
                return self.proc.poll()  # the timeout passed: no second wait
            if seen:
                timeout = _REAP_S  # a zombie now: reaping it is immediate
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, send_shutdown: Callable[[], None], timeout: float, term_timeout: float) -> int | None:
        """Shutdown frame (``send_shutdown``), wait, SIGTERM, wait, SIGKILL; then end the group.

        ``send_shutdown`` may raise nothing the caller cares about: a worker that already closed
        stdin cannot take the frame, and the signals still stop it.
        """
        if self.proc.poll() is None:
            send_shutdown()
            code = self.wait_exit(timeout)
            if code is None:
                self.signal(signal.SIGTERM)
                code = self.wait_exit(term_timeout)
            if code is None:
                self.kill()
        code = self.wait_exit(5.0)
        self.end_group()
        self.close_stdin()
        return code

    def kill(self) -> None:
        """SIGKILL the process and everything in its group (also when only its children are left)."""
        self.signal(signal.SIGKILL)
        self.end_group()
        self.close_stdin()

    def end_group(self) -> None:
        """SIGKILL whatever is left in the process group (children the worker started).

        The group id is the worker's pid; the kernel hands out no pid that is still some group's id,
        so while anything of the group lives this cannot hit an unrelated process.
        """
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process group (to the process alone if the group is gone)."""
        proc = self.proc
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                return

    def close_stdin(self) -> None:
        """Close the pipe to the worker's stdin (it reads EOF); a pipe already broken is fine."""
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.proc.stdin.close()


def exit_message(code: int | None, last_stderr_line: str) -> str:
    """How a worker's exit reads in a failure: exit code or signal, plus its last stderr line."""
    tail = last_stderr_line
    if len(tail) > _QUOTE_CHARS:
        tail = tail[:_QUOTE_CHARS] + "\u2026"
    if code is None:
        text = "worker closed its stdout but is still running"
    elif code < 0:
        try:
            text = f"worker was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            text = f"worker was killed by signal {-code}"
    else:
        text = f"worker exited with code {code}"
    return f"{text}; last stderr line: {tail}" if tail else text
