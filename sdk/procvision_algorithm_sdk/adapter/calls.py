"""Run one ``call`` against the algorithm and build its reply frame (phase protocol; execute-only
calls are passed to ``execute_only``)."""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any, Callable

from .. import protocol
from ..base import BaseAlgorithm
from ..errors import ErrorCode, ProcVisionError, error_name
from ..logger import StructuredLogger
from ..session import Session
from .sessions import SessionStore

if TYPE_CHECKING:
    from .execute_only import ExecuteOnlyHandler

PHASES = ("info", "pre", "execute")


class CallRejected(Exception):
    """The call's data is unusable; becomes an error frame with ``error_code``."""

    def __init__(self, message: str, error_code: ErrorCode) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code.value


def error_frame(request_id: str, exc: BaseException, where: str, logger: StructuredLogger) -> dict[str, Any]:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, ProcVisionError):
        logger.error(f"{where} raised {type(exc).__name__}", request_id=request_id, error_code=exc.error_code,
                     traceback=tb)
        return protocol.make_error(request_id, exc.message, **exc.to_fields())
    logger.error(f"{where} raised {type(exc).__name__}: {exc}", request_id=request_id, traceback=tb)
    return protocol.make_error(request_id, f"{where} raised {type(exc).__name__}: {exc}",
                               ErrorCode.EXECUTE_EXCEPTION.value, error_class=type(exc).__name__,
                               fatal=False, retryable=False)


def field(data: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CallRejected(f"call data field {key!r} must be {kind.__name__}, got {type(value).__name__}",
                           ErrorCode.INVALID_PARAMS)
    return value


class CallHandler:
    """Executes calls for one algorithm instance, keeping sessions between them."""

    def __init__(self, algorithm: BaseAlgorithm, sessions: SessionStore, logger: StructuredLogger,
                 execute_only: ExecuteOnlyHandler | None = None) -> None:
        self.algorithm = algorithm
        self.sessions = sessions
        self.logger = logger
        #: Set for an execute-only algorithm: every call goes there.
        self.execute_only = execute_only

    def handle(self, request_id: str, data: Any) -> dict[str, Any]:
        """The reply frame (``result`` or ``error``) for a call. Never raises for algorithm faults."""
        try:
            if not isinstance(data, dict):
                raise CallRejected("call has no 'data' object", ErrorCode.INVALID_PARAMS)
            if self.execute_only is not None:
                return self.execute_only.handle(request_id, data)
            phase = data.get("phase")
            if phase is None and "cur_image_shm_id" in data:
                raise CallRejected("this algorithm is written in the phase style (get_info, pre_execute, execute "
                                   "with shared_mem_id): it cannot serve an execute-only call with "
                                   "cur_image_shm_id/guide_image_shm_id", ErrorCode.INVALID_PARAMS)
            if phase not in PHASES:
                raise CallRejected(f"unknown phase {phase!r}: expected one of {', '.join(PHASES)}",
                                   ErrorCode.INVALID_PARAMS)
            if phase == "info":
                return self._info(request_id)
            return self._step(request_id, phase, data)
        except CallRejected as exc:
            self.logger.warning("call rejected", request_id=request_id, reason=exc.message)
            return protocol.make_error(request_id, exc.message, exc.error_code)

    def _info(self, request_id: str) -> dict[str, Any]:
        try:
            info = self.algorithm.get_info()
        except Exception as exc:  # noqa: BLE001 - algorithm code: any failure becomes a reply
            return error_frame(request_id, exc, "get_info()", self.logger)
        if not isinstance(info, dict):
            raise CallRejected(f"get_info() returned {type(info).__name__}, expected a dict", ErrorCode.INVALID_RESULT)
        return protocol.make_result(request_id, "OK", "", {"phase": "info", "step_index": 0, "info": info})

    def _step(self, request_id: str, phase: str, data: dict[str, Any]) -> dict[str, Any]:
        step_index = field(data, "step_index", int, 1)
        pid = field(data, "pid", str, "")
        session_info = field(data, "session", dict, {})
        user_params = field(data, "user_params", dict, {})
        shared_mem_id = field(data, "shared_mem_id", str, "")
        image_meta = field(data, "image_meta", dict, {})
        raw_id = session_info.get("id")
        session_id = str(raw_id) if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else ""
        context = session_info.get("context") or {}
        if not isinstance(context, dict):
            raise CallRejected("session.context must be an object", ErrorCode.INVALID_PARAMS)
        stored = session_id != ""
        # A call without a session id gets a throwaway session: state must not leak between
        # unrelated calls through a shared default id.
        session = self.sessions.get(session_id, context) if stored else Session("", context)
        try:
            return self._run_step(request_id, phase, step_index, pid, session, user_params, shared_mem_id,
                                  image_meta)
        finally:
            if stored and data.get("end_session") is True:
                self.sessions.end(session_id)

    def _run_step(self, request_id: str, phase: str, step_index: int, pid: str, session: Session,
                  user_params: dict[str, Any], shared_mem_id: str, image_meta: dict[str, Any]) -> dict[str, Any]:
        alg = self.algorithm
        hook_ctx = {"pid": pid, "phase": phase, "trace_id": session.context.get("trace_id")}
        try:
            alg.on_step_start(step_index, session, hook_ctx)
        except Exception as exc:  # noqa: BLE001 - algorithm code: any failure becomes a reply
            return error_frame(request_id, exc, "on_step_start()", self.logger)
        method: Callable[..., Any] = alg.pre_execute if phase == "pre" else alg.execute
        name = "pre_execute()" if phase == "pre" else "execute()"
        try:
            result = method(step_index, pid, session, user_params, shared_mem_id, image_meta)
        except Exception as exc:  # noqa: BLE001 - algorithm code: any failure becomes a reply
            return error_frame(request_id, exc, name, self.logger)
        if not isinstance(result, dict):
            raise CallRejected(f"{name} returned {type(result).__name__}, expected a dict", ErrorCode.INVALID_RESULT)
        try:
            alg.on_step_finish(step_index, session, result)
        except Exception as exc:  # noqa: BLE001 - algorithm code: any failure becomes a reply
            return error_frame(request_id, exc, "on_step_finish()", self.logger)
        return result_frame(request_id, phase, step_index, result, name)


def result_frame(request_id: str, phase: str, step_index: int, result: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``result`` frame for what ``name`` returned; keeps the algorithm's ``error_code``."""
    status = result.get("status") or "OK"
    if not isinstance(status, str):
        raise CallRejected(f"{name} returned a non-string status {status!r}", ErrorCode.INVALID_RESULT)
    message = result.get("message") or ""
    payload = result.get("data")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise CallRejected(f"{name} returned 'data' of type {type(payload).__name__}, expected a dict",
                           ErrorCode.INVALID_RESULT)
    frame_data: dict[str, Any] = {"phase": phase, "step_index": step_index}
    frame_data.update(payload)
    extra: dict[str, str | None] = {}
    code = result.get("error_code")
    if code is not None and code != "":
        # Upstream adapters drop this; the runner needs it to tell failure kinds apart.
        extra["error_code"] = str(code)
        extra["error_name"] = error_name(str(code))
    return protocol.make_result(request_id, status, str(message), frame_data, **extra)

