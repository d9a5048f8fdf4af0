"""Runner-side client of one adapter subprocess.

``AdapterClient`` starts ``python -m procvision_algorithm_sdk.adapter`` (or any argv speaking the
protocol), does the hello handshake, and sends calls and pings. A reader thread routes every reply
to the caller waiting for its ``request_id``, so concurrent callers never take each other's replies
and a ping is answered while a call runs. Every wait has a deadline. Used by ``procvision-cli``
(``validate --full``, ``run``) and by the runner's supervisor and install smoke test.

This module owns the conversation and spawns the process; ending the process (signals, exit, its
process group) is ``worker_process``, reading its stdout and routing the replies is ``worker_stream``,
the failures it raises are ``worker_failures`` (re-exported here).
"""

from __future__ import annotations

import collections
import contextlib
import os
import subprocess
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import IO, Any, Callable

from . import protocol
from .worker_failures import (
    CallTimedOut,
    HandshakeFailed,
    WorkerExited,
    WorkerFailure,
    WorkerProtocolViolation,
)
from .worker_process import WorkerProcess, exit_message
from .worker_stream import ReplyRouter, iter_capped_lines, read_frames

#: Longest stderr line kept (bytes); the rest of a longer line is counted and dropped unread-into-memory.
DEFAULT_MAX_STDERR_LINE_BYTES = 8192


def adapter_argv(python: str, entry: str | None = None) -> list[str]:
    """The command line that starts an adapter under ``python``."""
    argv = [python, "-m", "procvision_algorithm_sdk.adapter"]
    if entry:
        argv += ["--entry", entry]
    return argv


class AdapterClient:
    """One adapter subprocess and the protocol conversation with it.

    Thread-safe: any number of threads may call ``call``/``ping`` at once. The adapter itself runs
    one call at a time; serialising calls is the caller's business (the runner's worker does it).
    """

    def __init__(
        self,
        argv: Sequence[str],
        cwd: str,
        env: Mapping[str, str] | None = None,
        *,
        max_frame_bytes: int = protocol.DEFAULT_MAX_FRAME_BYTES,
        stderr_tail_lines: int = 200,
        on_stderr_line: Callable[[str], None] | None = None,
        on_exit: Callable[[AdapterClient, int | None, str], None] | None = None,
        on_frame: Callable[[dict[str, Any]], None] | None = None,
        max_stderr_line_bytes: int = DEFAULT_MAX_STDERR_LINE_BYTES,
        on_spawn: Callable[[int], None] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env) if env is not None else dict(os.environ)
        self.max_frame_bytes = max_frame_bytes
        self._on_stderr_line = on_stderr_line
        self._on_exit = on_exit
        self.max_stderr_line_bytes = max(256, max_stderr_line_bytes)
        # Told the pid right after the spawn (the runner records it for clean-up after a crash).
        self._on_spawn = on_spawn
        # Set by start(): ends the process and its group; None until then (nothing to end).
        self._process: WorkerProcess | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=stderr_tail_lines)
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_lock = threading.Lock()
        self._router = ReplyRouter(lambda: self.stderr_tail, on_frame)
        self._reader: threading.Thread | None = None
        self._stderr_reader: threading.Thread | None = None
        self._exit_reported = False

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._router.failure is None

    @property
    def hello(self) -> dict[str, Any] | None:
        hello = self._router.hello
        return hello.result() if hello.done() and not hello.exception() else None

    @property
    def capabilities(self) -> list[str]:
        hello = self.hello or {}
        caps = hello.get("capabilities")
        return [str(c) for c in caps] if isinstance(caps, list) else []

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr_tail)

    @property
    def failure(self) -> WorkerFailure | None:
        """Why the conversation ended, if it has."""
        return self._router.failure

    def start(self, handshake_timeout: float, runner_hello: dict[str, Any] | None = None) -> dict[str, Any]:
        """Spawn the process and wait for its hello. Returns the hello frame.

        Raises HandshakeFailed if the first frame is an error (the algorithm failed to load), is not a
        hello, or does not arrive within ``handshake_timeout`` seconds; the process is then killed.
        """
        if self._proc is not None:
            raise RuntimeError("AdapterClient.start() called twice")
        self._proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            # Its own session and process group: signals to the daemon's group never reach the
            # worker, and everything the worker starts can be ended with it (``end_group``).
            start_new_session=True,
        )
        self._process = WorkerProcess(self._proc)
        if self._on_spawn is not None:
            self._on_spawn(self._proc.pid)
        self._reader = threading.Thread(target=self._read_frames, name=f"adapter-stdout-{self._proc.pid}",
                                        daemon=True)
        self._stderr_reader = threading.Thread(target=self._read_stderr, name=f"adapter-stderr-{self._proc.pid}",
                                               daemon=True)
        self._reader.start()
        self._stderr_reader.start()
        try:
            hello = self._router.hello.result(timeout=handshake_timeout)
        except FutureTimeout:
            self.kill()
            raise HandshakeFailed(f"no hello from the worker within {handshake_timeout:.1f}s",
                                  exit_code=self._wait_exit(2.0), stderr_tail=self.stderr_tail) from None
        except HandshakeFailed:
            self.kill()
            raise
        except WorkerFailure as exc:
            self.kill()
            raise HandshakeFailed(f"worker failed during handshake: {exc.message}", exc.error_code,
                                  exit_code=self._wait_exit(2.0), stderr_tail=self.stderr_tail) from exc
        if runner_hello is not None:
            try:
                self._send(runner_hello)
            except WorkerFailure as exc:
                self.kill()
                raise HandshakeFailed(f"worker failed during handshake: {exc.message}", exc.error_code,
                                      exit_code=self._wait_exit(2.0), stderr_tail=self.stderr_tail) from exc
        return hello

    def shutdown(self, timeout: float = 5.0, term_timeout: float = 3.0) -> int | None:
        """Stop gracefully: shutdown frame, wait, SIGTERM, wait, SIGKILL. Returns the exit code.

        Whatever the worker started and left running (its process group) is killed afterwards.
        """
        if self._process is None:
            return None
        return self._process.stop(self._send_shutdown, timeout, term_timeout)

    def kill(self) -> None:
        """SIGKILL the worker and everything in its process group at once (also when the worker
        itself already ended and only what it started is left)."""
        if self._process is not None:
            self._process.kill()

    def end_group(self) -> None:
        """SIGKILL whatever is left in the worker's process group (children it started)."""
        if self._process is not None:
            self._process.end_group()

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the process to exit; its exit code or None."""
        return self._wait_exit(timeout)

    # --- requests ------------------------------------------------------------------------------

    def new_request_id(self) -> str:
        return uuid.uuid4().hex

    def submit(self, message: dict[str, Any], encoded: bytes | None = None) -> Future[dict[str, Any]]:
        """Send a message carrying a ``request_id`` and return a future for its reply frame.

        ``encoded``: the message's frame as ``protocol.encode_frame`` made it, when the caller already
        encoded it (to check its size) and need not pay for it twice.
        """
        request_id = message.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise ValueError("message needs a non-empty string request_id")
        future = self._router.register(request_id)
        try:
            self._send(message, encoded)
        except WorkerFailure:
            self._router.forget(request_id)
            raise
        return future

    def call(self, data: dict[str, Any], timeout: float, request_id: str | None = None,
             encoded: bytes | None = None) -> dict[str, Any]:
        """Send a ``call`` and wait for its ``result`` or ``error`` frame (returned as is).

        ``encoded``: the frame of ``protocol.make_call(request_id, data)``, if the caller has it already.
        Raises CallTimedOut after ``timeout`` seconds (the worker keeps running: recycle it), or
        WorkerExited / WorkerProtocolViolation if the worker dies or corrupts the stream.
        """
        rid = request_id or self.new_request_id()
        if encoded is not None and request_id is None:
            raise ValueError("an encoded call frame needs the request_id it was encoded with")
        future = self.submit(protocol.make_call(rid, data), encoded)
        return self._await(rid, future, timeout, "call")

    def ping(self, timeout: float) -> dict[str, Any]:
        """Send a ``ping`` and wait for the pong."""
        rid = "ping-" + self.new_request_id()
        future = self.submit(protocol.make_ping(rid))
        return self._await(rid, future, timeout, "ping")

    def send(self, message: dict[str, Any]) -> None:
        """Send a message that expects no reply."""
        self._send(message)

    def _await(self, rid: str, future: Future[dict[str, Any]], timeout: float, what: str) -> dict[str, Any]:
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            self._router.forget(rid)
            raise CallTimedOut(f"no reply to {what} {rid} within {timeout:.3f}s",
                               exit_code=self.returncode, stderr_tail=self.stderr_tail) from None

    # --- internals -----------------------------------------------------------------------------

    def _send_shutdown(self) -> None:
        # A worker that already closed stdin cannot take the frame; the signals after it still stop it.
        with contextlib.suppress(WorkerFailure):
            self._send({"type": protocol.SHUTDOWN})

    def _send(self, message: dict[str, Any], encoded: bytes | None = None) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise WorkerExited("worker is not started")
        data = encoded if encoded is not None else protocol.encode_frame(message, self.max_frame_bytes)
        with self._write_lock:
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError) as exc:
                reason = self._router.failure
                if reason is not None:
                    # The reader already ended the conversation (e.g. text on stdout) and closed the
                    # pipe: report its cause, not the write that lost the race.
                    raise reason from exc
                raise WorkerExited(f"cannot write to the worker: {exc}", exit_code=proc.poll(),
                                   stderr_tail=self.stderr_tail) from exc

    def _read_frames(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        stream: IO[bytes] = proc.stdout

        def at_eof() -> WorkerFailure:
            code = self._wait_exit(2.0)
            self._drain_stderr(code)
            return WorkerExited(self._exit_message(code), exit_code=code, stderr_tail=self.stderr_tail)

        failure = read_frames(stream, self.max_frame_bytes, self._router, lambda: self.stderr_tail, at_eof)
        # Nothing reads this pipe any more: close it now rather than when the Popen is collected,
        # so a runner that recycles workers for days does not pile up pipe descriptors.
        with contextlib.suppress(OSError):
            stream.close()
        self._close(failure)

    def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        # The pipe is unbuffered (bufsize=0 keeps stdin/stdout framing exact), and readline on a raw
        # pipe reads one byte per system call: read stderr through its own buffer instead.
        with os.fdopen(proc.stderr.fileno(), "rb", buffering=64 * 1024, closefd=False) as reader:
            for line in iter_capped_lines(reader, self.max_stderr_line_bytes):
                self._stderr_tail.append(line)
                if self._on_stderr_line is not None:
                    self._on_stderr_line(line)
        with contextlib.suppress(OSError):
            proc.stderr.close()

    def _close(self, failure: WorkerFailure) -> None:
        failure, pending = self._router.close(failure)
        if isinstance(failure, WorkerProtocolViolation):
            self.kill()
        self._router.wake(failure, pending)
        if not self._exit_reported and self._on_exit is not None:
            self._exit_reported = True
            # The process first, then its last stderr lines: once it (and the sandbox around it) has
            # exited, what is left in the pipe is read at once, even on a busy machine.
            code = self._wait_exit(5.0)
            self._drain_stderr(code)
            self._on_exit(self, code, failure.message)

    def _drain_stderr(self, exit_code: int | None) -> None:
        """Let the stderr reader take the last lines of a process that has exited.

        The failure that reports the exit quotes the stderr tail; on a busy machine the reader may
        not have run yet when stdout closes. Bounded: a child that inherited stderr keeps it open.
        """
        reader = self._stderr_reader
        if exit_code is not None and reader is not None and reader is not threading.current_thread():
            reader.join(timeout=2.0)

    def _exit_message(self, code: int | None) -> str:
        return exit_message(code, self.stderr_tail[-1] if self._stderr_tail else "")

    def _wait_exit(self, timeout: float) -> int | None:
        return self._process.wait_exit(timeout) if self._process is not None else None


__all__ = ["AdapterClient", "CallTimedOut", "HandshakeFailed", "WorkerExited", "WorkerFailure",
           "WorkerProtocolViolation", "adapter_argv", "iter_capped_lines"]
