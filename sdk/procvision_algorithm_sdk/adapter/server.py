"""The adapter's main loop: load the algorithm, say hello, serve frames until told to stop.

Threads: the reader thread reads frames and answers pings itself, so a ping gets its pong while a
call runs; the call thread runs one call at a time; the main thread waits for a stop request
(``shutdown`` frame, end of input, SIGTERM/SIGINT) and then tears down exactly once.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
import threading
import time
import traceback
from types import FrameType
from typing import Any, Callable

from .. import __version__, protocol, styles
from ..base import BaseAlgorithm
from ..errors import ErrorCode, ProcVisionError
from ..logger import StructuredLogger
from ..session import Session
from .calls import CallHandler
from .entry import EntryError, extend_sys_path, load_algorithm, resolve_entry
from .execute_only import ExecuteOnlyHandler, implements_get_info, manifest_info
from .load_failure import EXIT_LOAD_FAILED, MAX_MESSAGE_CHARS, load_failure
from .sessions import DEFAULT_CAPACITY, SessionStore
from .stdio import ProtocolStreams

__all__ = ["AdapterServer", "main", "EXIT_LOAD_FAILED"]


def _tb(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class AdapterServer:
    """Serves the protocol for one loaded algorithm over ``streams``."""

    def __init__(self, algorithm: BaseAlgorithm, streams: ProtocolStreams, logger: StructuredLogger, *,
                 max_frame_bytes: int, session_capacity: int = DEFAULT_CAPACITY,
                 shutdown_grace_s: float = 3.0, execute_only: ExecuteOnlyHandler | None = None,
                 hard_exit: Callable[[int], None] | None = None) -> None:
        self.algorithm = algorithm
        # Replaceable so the main loop can run inside a test process without ending it.
        self._hard_exit = hard_exit or _hard_exit
        self.streams = streams
        self.logger = logger
        self.max_frame_bytes = max_frame_bytes
        self.shutdown_grace_s = shutdown_grace_s
        self.sessions = SessionStore(self._reset_session, session_capacity)
        self.handler = CallHandler(algorithm, self.sessions, logger, execute_only)
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._busy_id: str | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._calls: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self._stop = threading.Event()
        self._stop_reason = ""
        self._hurry = threading.Event()
        self._torn_down = False

    # --- output ---------------------------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> bool:
        """Write one frame. A reply that cannot be encoded becomes a 1014 error frame instead."""
        try:
            data = protocol.encode_frame(frame, self.max_frame_bytes)
        except (ValueError, TypeError, protocol.FrameTooLarge) as exc:
            kind = frame.get("type")
            message = (f"the {kind} frame could not be encoded: {type(exc).__name__}: {exc}. Results must be "
                       "JSON (no NaN/Infinity, no numpy or custom objects: convert with float()/int()/.tolist()) "
                       f"and at most {self.max_frame_bytes} bytes")
            self.logger.error("reply could not be encoded", request_id=frame.get("request_id"), reason=str(exc))
            data = protocol.encode_frame(
                protocol.make_error(frame.get("request_id"), message[:MAX_MESSAGE_CHARS],
                                    ErrorCode.INVALID_RESULT.value), self.max_frame_bytes)
        with self._write_lock:
            try:
                self.streams.out.write(data)
                self.streams.out.flush()
            except (BrokenPipeError, OSError, ValueError) as exc:
                self.logger.error("cannot write to the protocol stream; stopping", reason=str(exc))
                self.request_stop("stdout closed")
                return False
        return True

    # --- stop -----------------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Ask the main thread to stop. Lock-free: the signal handler calls it on the main thread,
        which may already hold our locks."""
        if not self._stop_reason:
            self._stop_reason = reason
        self._stop.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Runs on the main thread between bytecodes: take no locks and write no buffered streams.
        name = signal.Signals(signum).name
        if not self._stop.is_set():
            self.request_stop(f"signal {name}")
        elif self._torn_down:
            # Asked again while teardown() runs: the runner has waited long enough.
            os.write(2, f"adapter: {name} received during teardown; exiting now\n".encode())
            os._exit(0)
        else:
            self._hurry.set()  # stop waiting for the running call; teardown still happens once

    def _reset_session(self, session: Session) -> None:
        try:
            self.algorithm.reset(session)
        except Exception as exc:  # noqa: BLE001 - algorithm code: logged, must not stop the others
            self.logger.error(f"reset() raised {type(exc).__name__}: {exc}", session_id=session.id,
                              traceback=_tb(exc))

    def teardown(self) -> None:
        """End all sessions and call the algorithm's teardown(), at most once per process."""
        with self._state_lock:
            if self._torn_down:
                return
            self._torn_down = True
        self.sessions.clear()
        try:
            self.algorithm.teardown()
        except Exception as exc:  # noqa: BLE001 - algorithm code: logged, the worker exits anyway
            self.logger.error(f"teardown() raised {type(exc).__name__}: {exc}", traceback=_tb(exc))

    # --- threads --------------------------------------------------------------------------------

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                frame = protocol.read_frame(self.streams.inp, self.max_frame_bytes)
            except protocol.ConnectionClosed as exc:
                self.request_stop(f"end of input ({exc})")
                return
            except protocol.FrameTooLarge as exc:
                self.logger.error("oversized frame skipped", reason=str(exc))
                self.send(protocol.make_error(None, str(exc), ErrorCode.FRAME_TOO_LARGE.value))
                continue
            except protocol.ProtocolError as exc:
                self.logger.error("malformed frame skipped", reason=str(exc))
                self.send(protocol.make_error(None, str(exc), ErrorCode.PROTOCOL_ERROR.value))
                continue
            except (OSError, ValueError) as exc:
                self.request_stop(f"reading the protocol stream failed: {exc}")
                return
            self._dispatch(frame)

    def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        rid = frame.get("request_id")
        if kind == protocol.PING:
            with self._state_lock:
                busy_id = self._busy_id
            self.send(protocol.make_pong(rid, busy_id is not None, busy_id))
        elif kind == protocol.CALL:
            self._accept_call(rid, frame.get("data"))
        elif kind == protocol.SHUTDOWN:
            self.request_stop("shutdown")
        elif kind == protocol.HELLO:
            self.logger.info("runner hello", runner_version=frame.get("runner_version"),
                             heartbeat_interval_ms=frame.get("heartbeat_interval_ms"))
        else:
            self.logger.warning("ignored frame of unknown type", frame_type=kind, request_id=rid)

    def _accept_call(self, rid: Any, data: Any) -> None:
        if not isinstance(rid, str) or not rid:
            self.send(protocol.make_error(rid if isinstance(rid, str) else None,
                                          "call needs a non-empty string request_id",
                                          ErrorCode.PROTOCOL_ERROR.value))
            return
        with self._state_lock:
            busy_id = self._busy_id
            if busy_id is None and not self._stop.is_set():
                self._busy_id = rid
                self._idle.clear()
        if busy_id is not None:
            self.send(protocol.make_error(rid, f"worker busy with {busy_id}", ErrorCode.QUEUE_FULL.value,
                                          busy_request_id=busy_id))
            return
        if self._stop.is_set():
            self.send(protocol.make_error(rid, "worker is shutting down", ErrorCode.WORKER_UNAVAILABLE.value))
            return
        self._calls.put((rid, data))

    def _handle(self, rid: str, data: Any) -> dict[str, Any]:
        watch = self.streams.watch
        if watch is None:
            return self.handler.handle(rid, data)
        watch.arm()
        try:
            reply = self.handler.handle(rid, data)
        finally:
            written, sample = watch.disarm()
        if written:
            # Strict mode (PROC_STRICT_STDIO): the public adapter's contract is to fail such a call.
            self.logger.error("stdout_contaminated", request_id=rid, stdout_bytes=written, sample=sample)
            return protocol.make_error(rid, f"the algorithm wrote {written} bytes to stdout during this call "
                                       f"(strict stdio mode); log with StructuredLogger or to stderr instead",
                                       ErrorCode.STDOUT_CONTAMINATED.value, stdout_bytes=written)
        return reply

    def _call_loop(self) -> None:
        while True:
            item = self._calls.get()
            if item is None:
                return
            rid, data = item
            try:
                reply = self._handle(rid, data)
            except BaseException as exc:  # noqa: BLE001 - sys.exit() in algorithm code must not kill the thread
                self.logger.error(f"call raised {type(exc).__name__}", request_id=rid, traceback=_tb(exc))
                reply = protocol.make_error(rid, f"{type(exc).__name__}: {exc}"[:MAX_MESSAGE_CHARS],
                                            ErrorCode.EXECUTE_EXCEPTION.value, error_class=type(exc).__name__,
                                            fatal=False, retryable=False)
            with self._state_lock:
                # Free before replying: the runner may send the next call the moment it reads this.
                self._busy_id = None
                self._idle.set()
            self.send(reply)

    # --- main -----------------------------------------------------------------------------------

    def run(self, hello: dict[str, Any]) -> int:
        """Serve until stopped; returns the process exit code."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        caller = threading.Thread(target=self._call_loop, name="adapter-call", daemon=True)
        reader = threading.Thread(target=self._read_loop, name="adapter-reader", daemon=True)
        caller.start()
        if not self.send(hello):
            self.teardown()
            return 0
        reader.start()
        # Wait in slices so signal handlers (which run on this thread) are never held up.
        while not self._stop.wait(0.5):
            pass
        self.logger.info("adapter stopping", reason=self._stop_reason)
        deadline = time.monotonic() + self.shutdown_grace_s
        while not self._idle.wait(0.05):
            if self._hurry.is_set() or time.monotonic() >= deadline:
                break
        finished = self._idle.is_set()
        if not finished:
            with self._state_lock:
                busy_id = self._busy_id
            self.logger.warning("a call is still running at shutdown; tearing down anyway",
                                request_id=busy_id, grace_s=self.shutdown_grace_s)
        self._calls.put(None)
        if finished:
            # The call thread marks itself idle before it writes the reply (so the runner can send
            # the next call at once); wait for that write, or the process could end without it.
            caller.join(self.shutdown_grace_s + 5.0)
        self.teardown()
        if self._stop_reason == "shutdown":
            self.send(protocol.make_shutdown_ack())
        if not finished:
            # The call thread is stuck in algorithm code; interpreter shutdown could hang on it.
            self._hard_exit(0)
        lingering = [t.name for t in threading.enumerate()
                     if t is not threading.current_thread() and not t.daemon and t.is_alive()]
        if lingering:
            # Threads the algorithm started and did not stop in teardown() would keep the process
            # alive after the runner considers it gone.
            self.logger.warning("non-daemon threads still running after teardown; exiting without them",
                                threads=lingering)
            self._hard_exit(0)
        return 0


def _hard_exit(code: int) -> None:
    """Exit now without waiting for threads; flush what we can first."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            continue
    os._exit(code)


def _parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m procvision_algorithm_sdk.adapter")
    parser.add_argument("--entry", default=None, help="module.path:ClassName of the algorithm")
    parser.add_argument("--session-capacity", type=int, default=DEFAULT_CAPACITY)
    parser.add_argument("--shutdown-grace-s", type=float, default=3.0)
    # The public adapter's options and their environment defaults. It parses them and uses none;
    # so does this one (the runner owns heartbeats), but they are checked and logged.
    parser.add_argument("--log-level", default=os.environ.get("PROC_LOG_LEVEL") or "info")
    parser.add_argument("--heartbeat-interval-ms", type=int,
                        default=_env_int("PROC_HEARTBEAT_INTERVAL_MS", 5000))
    parser.add_argument("--heartbeat-grace-ms", type=int, default=_env_int("PROC_HEARTBEAT_GRACE_MS", 2000))
    return parser.parse_known_args(argv)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        StructuredLogger(component="adapter").warning(f"${name} is not an integer; using {default}", value=raw)
        return default


def _cheap_info(algorithm: BaseAlgorithm, logger: StructuredLogger,
                fallback: dict[str, Any] | None = None) -> dict[str, Any] | None:
    if not implements_get_info(algorithm):
        if fallback is None:
            return None
        return {"name": str(fallback.get("name", "")), "version": str(fallback.get("version", ""))}
    try:
        info = algorithm.get_info()
    except Exception as exc:  # noqa: BLE001 - algorithm code; hello goes out without info
        logger.warning(f"get_info() raised {type(exc).__name__}: {exc}; hello sent without algorithm info")
        return None
    if not isinstance(info, dict):
        return None
    return {"name": str(info.get("name", "")), "version": str(info.get("version", ""))}


def main(argv: list[str], streams: ProtocolStreams) -> int:
    """Run the adapter. ``streams`` comes from ``stdio.protect_stdio()``."""
    logger = StructuredLogger(component="adapter")
    args, unknown = _parse_args(argv)
    if unknown:
        logger.warning("ignored unknown command-line arguments", arguments=unknown)
    max_bytes = protocol.max_frame_bytes()
    env = dict(os.environ)
    cwd = os.getcwd()
    extend_sys_path(env, cwd)
    try:
        entry, source = resolve_entry(args.entry, env, cwd)
    except EntryError as exc:
        return load_failure(streams, logger, exc, exc.message, max_bytes)
    try:
        algorithm = load_algorithm(entry)
    except EntryError as exc:
        return load_failure(streams, logger, exc, f"{exc.message} (entry from {source})", max_bytes)
    try:
        algorithm.setup()
    except BaseException as exc:  # noqa: BLE001 - a failed setup is reported, whatever it raised
        message = f"entry point {entry!r}: setup() failed: {type(exc).__name__}: {exc}"
        if not isinstance(exc, ProcVisionError):
            exc = EntryError(message, ErrorCode.UNKNOWN_ERROR.value)
        return load_failure(streams, logger, exc, message, max_bytes)
    style = algorithm.algorithm_style()  # checked when the class was constructed
    execute_only: ExecuteOnlyHandler | None = None
    fallback = None
    if style == styles.EXECUTE_ONLY:
        fallback = manifest_info(env, cwd)
        execute_only = ExecuteOnlyHandler(algorithm, logger, fallback)
    hello_extra: dict[str, Any] = {"entry_point": entry, "pid": os.getpid(), "algorithm_style": style}
    info = _cheap_info(algorithm, logger, fallback)
    if info is not None:
        hello_extra["algorithm"] = info
    hello = protocol.make_hello(__version__, protocol.hello_capabilities(style), **hello_extra)
    server = AdapterServer(algorithm, streams, logger, max_frame_bytes=max_bytes,
                           session_capacity=args.session_capacity, shutdown_grace_s=args.shutdown_grace_s,
                           execute_only=execute_only)
    logger.info("adapter ready", entry_point=entry, entry_source=source, algorithm_style=style,
                strict_stdio=streams.watch is not None, log_level=args.log_level)
    return server.run(hello)
