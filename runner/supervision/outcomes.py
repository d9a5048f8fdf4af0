"""Building CallOutcome values from worker frames and from runner-side failures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.errors import ErrorCode, error_name

from .dialects import Dialect
from .spec import CallOutcome

_FRAME_KEYS = {"type", "request_id", "timestamp_ms", "status", "message", "data", "error_code", "error_name"}


def outcome_from_frame(frame: Mapping[str, Any], dialect: Dialect, pid: int | None, latency_ms: float
                       ) -> CallOutcome:
    """Turn a worker's ``result`` or ``error`` frame into a CallOutcome (no normalisation of data)."""
    kind = frame.get("type")
    data = frame.get("data")
    ok = kind == protocol.RESULT and frame.get("status") == "OK"
    code = frame.get("error_code")
    if kind == protocol.ERROR:
        code = str(code or ErrorCode.UNKNOWN_ERROR.value)
    elif kind != protocol.RESULT:
        ok = False
        code = ErrorCode.PROTOCOL_ERROR.value
    code_str = None if ok or code is None else str(code)
    return CallOutcome(
        status="OK" if ok else "ERROR",
        message=str(frame.get("message") or ""),
        data=dict(data) if isinstance(data, dict) else {},
        error_code=code_str,
        error_name=(str(frame.get("error_name") or error_name(code_str))) if code_str else None,
        worker_pid=pid, latency_ms=latency_ms, retries=0, dialect=dialect,
        details={k: v for k, v in frame.items() if k not in _FRAME_KEYS},
        # The worker's own words stay in ``details`` (the answer shows them); the runner acts on these.
        retryable=frame.get("retryable") is True, fatal=frame.get("fatal") is True,
    )


def error_outcome(code: ErrorCode | str, message: str, dialect: Dialect | None, pid: int | None,
                  latency_ms: float, *, timed_out: bool = False, not_sent: bool = False,
                  **details: Any) -> CallOutcome:
    """An ERROR outcome made by the runner (timeouts, crashes, bad requests).

    ``timed_out`` / ``not_sent`` set the typed flags; a set flag is also reported in ``details``
    (the answer of ``/execute`` has always shown it there).
    """
    code_str = code.value if isinstance(code, ErrorCode) else str(code)
    shown = {**({"timed_out": True} if timed_out else {}), **({"not_sent": True} if not_sent else {})}
    return CallOutcome(status="ERROR", message=message, data={}, error_code=code_str,
                       error_name=error_name(code_str), worker_pid=pid, latency_ms=latency_ms, retries=0,
                       dialect=dialect or Dialect.PROCVISION, details={**details, **shown},
                       timed_out=timed_out, not_sent=not_sent)


