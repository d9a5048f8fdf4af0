"""Reading what a worker writes: frames on its stdout, routed to whoever waits for them, and its
stderr as capped lines.

``AdapterClient`` (``client.py``) owns the process; this module owns the conversation's reading
side, so the reply routing is one small object: every reply goes to the future registered under
its ``request_id``, the first frame settles the hello, and when the stream ends every waiter gets
the failure that ended it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import IO, Any

from . import protocol
from .errors import ErrorCode
from .worker_failures import HandshakeFailed, WorkerExited, WorkerFailure, WorkerProtocolViolation

Frame = dict[str, Any]


class ReplyRouter:
    """The futures waiting for a worker's frames. Thread-safe."""

    def __init__(self, stderr_tail: Callable[[], list[str]],
                 on_frame: Callable[[Frame], None] | None = None) -> None:
        self._stderr_tail = stderr_tail
        self._on_frame = on_frame
        self._lock = threading.Lock()
        self._pending: dict[str, Future[Frame]] = {}
        #: Settled by the first frame: the hello, or why the worker did not start.
        self.hello: Future[Frame] = Future()
        self.shutdown_ack: Future[Frame] = Future()
        self._failure: WorkerFailure | None = None
        # An error frame without request id after the hello (how upstream adapters report import
        # failures): kept so the failure at exit names the cause.
        self._hint: Frame | None = None

    @property
    def failure(self) -> WorkerFailure | None:
        """Why the conversation ended, if it has."""
        return self._failure

    def register(self, request_id: str) -> Future[Frame]:
        """A future for the reply to ``request_id``; raises the failure if the conversation ended."""
        future: Future[Frame] = Future()
        with self._lock:
            if self._failure is not None:
                raise self._failure
            self._pending[request_id] = future
        return future

    def forget(self, request_id: str) -> None:
        """Stop waiting for ``request_id`` (it timed out, or was never sent)."""
        with self._lock:
            self._pending.pop(request_id, None)

    def dispatch(self, frame: Frame) -> None:
        """Hand one frame to whoever waits for it; late and unsolicited frames are dropped."""
        kind = frame.get("type")
        if self._on_frame is not None:
            self._on_frame(frame)
        if not self.hello.done():
            if kind == protocol.HELLO:
                self.hello.set_result(frame)
            elif kind == protocol.ERROR:
                code = str(frame.get("error_code") or ErrorCode.HANDSHAKE_FAILED.value)
                self.hello.set_exception(HandshakeFailed(
                    f"worker reported an error before it was ready: {frame.get('message', '')}", code,
                    stderr_tail=self._stderr_tail()))
            else:
                self.hello.set_exception(HandshakeFailed(
                    f"worker's first frame is {kind!r}, expected 'hello'", stderr_tail=self._stderr_tail()))
            return
        if kind == protocol.SHUTDOWN:
            if not self.shutdown_ack.done():
                self.shutdown_ack.set_result(frame)
            return
        rid = frame.get("request_id")
        future = None
        if isinstance(rid, str):
            with self._lock:
                future = self._pending.pop(rid, None)
        if future is not None:
            if not future.done():
                future.set_result(frame)
            return
        if kind == protocol.ERROR and rid is None:
            # Upstream adapters report import failures after their hello with a null request id.
            # Keep it so the failure names the cause, then let the exit be detected.
            self._hint = frame
        # A late reply to a call that already timed out, or an unsolicited frame: nobody waits.

    def close(self, failure: WorkerFailure) -> tuple[WorkerFailure, list[Future[Frame]]]:
        """End the conversation with ``failure`` (named after the worker's own report, if it sent
        one). Returns that failure and the futures still waiting; ``wake`` fails them."""
        hint = self._hint
        if hint is not None and isinstance(failure, WorkerExited):
            failure = WorkerExited(f"{failure.message}; worker reported: {hint.get('message', '')}",
                                   str(hint.get("error_code") or failure.error_code),
                                   exit_code=failure.exit_code, stderr_tail=failure.stderr_tail)
        with self._lock:
            if self._failure is None:
                self._failure = failure
            pending = list(self._pending.values())
            self._pending.clear()
        return failure, pending

    def wake(self, failure: WorkerFailure, pending: list[Future[Frame]]) -> None:
        """Fail every waiter (and the hello, if it never came) with ``failure``."""
        for future in pending:
            if not future.done():
                future.set_exception(failure)
        if not self.hello.done():
            self.hello.set_exception(failure)


def read_frames(stream: IO[bytes], max_frame_bytes: int, router: ReplyRouter,
                stderr_tail: Callable[[], list[str]], at_eof: Callable[[], WorkerFailure]) -> WorkerFailure:
    """Read frames from ``stream`` into ``router`` until the stream ends or breaks the protocol;
    returns the failure that ended it (``at_eof()`` for a plain end of stream)."""
    while True:
        try:
            frame = protocol.read_frame(stream, max_frame_bytes, skip_oversized=False)
        except protocol.ConnectionClosed:
            return at_eof()
        except protocol.FrameTooLarge as exc:
            if exc.looks_like_text:
                return WorkerProtocolViolation(
                    f"worker wrote text into the protocol stream (starting {exc.header!r}); "
                    "something in the algorithm prints to stdout", stderr_tail=stderr_tail())
            return WorkerProtocolViolation(f"worker sent an oversized frame: {exc}", ErrorCode.FRAME_TOO_LARGE.value,
                                           stderr_tail=stderr_tail())
        except protocol.ProtocolError as exc:
            return WorkerProtocolViolation(
                f"worker corrupted the protocol stream (is something printing to stdout?): {exc}",
                stderr_tail=stderr_tail())
        except (OSError, ValueError) as exc:
            return WorkerExited(f"reading from the worker failed: {exc}", stderr_tail=stderr_tail())
        router.dispatch(frame)


def iter_capped_lines(stream: IO[bytes], max_bytes: int) -> Iterator[str]:
    """The lines of ``stream`` (decoded, without line endings), each at most ``max_bytes`` long.

    A longer line keeps its first ``max_bytes`` and gets a ``... [truncated N bytes]`` note; the
    rest is read in bounded chunks and dropped, so a huge line without newline never sits in memory.
    """
    while True:
        raw = stream.readline(max_bytes)
        if not raw:
            return
        dropped = 0
        if not raw.endswith(b"\n"):
            while True:
                more = stream.readline(64 * 1024)
                if not more:
                    break
                dropped += len(more) - (1 if more.endswith(b"\n") else 0)
                if more.endswith(b"\n"):
                    break
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if dropped:
            line += f"\u2026 [truncated {dropped} bytes]"
        yield line
