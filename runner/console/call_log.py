"""What the execute route tells the console about each call: one small record, O(1) work."""

from __future__ import annotations

import time
from typing import Any

from runner.errors import RunnerError
from runner.supervision.dialects import CallRequest

from .health_series import HealthSeries
from .recent_calls import CallRecord, RecentCalls
from .thumbnails import take_thumbnail

__all__ = ["CallLog"]


class CallLog:
    """Recent calls (with thumbnails) and the per-second health series, fed by POST /execute."""

    def __init__(self, keep: int, thumbnail_width: int, window_s: int, thumbnails: bool = True) -> None:
        self.recent = RecentCalls(keep)
        self.health = HealthSeries(window_s)
        self._thumbnail_width = thumbnail_width
        self._thumbnails = thumbnails

    def record(self, call: CallRequest, result: dict[str, Any]) -> None:
        """A call that produced a result (``status`` OK or ERROR)."""
        latency = result.get("latency_ms")
        latency_ms = float(latency) if isinstance(latency, int | float) else None
        data = result.get("data") if isinstance(result.get("data"), dict) else {}
        rects = data.get("defect_rects") if isinstance(data, dict) else None
        status = str(result.get("status") or "ERROR")
        code = result.get("error_code")
        self._add(call, status, latency_ms, None if code is None else str(code), result.get("message"),
                  result.get("served_by"), data.get("result_status") if isinstance(data, dict) else None,
                  [r for r in rects if isinstance(r, dict)] if isinstance(rects, list) else [])

    def record_failure(self, call: CallRequest, error: RunnerError, started: float) -> None:
        """A call the runner refused or could not complete (the route raises ``error``)."""
        self._add(call, "ERROR", (time.monotonic() - started) * 1000.0, error.code, error.message, None, None, [])

    def _add(self, call: CallRequest, status: str, latency_ms: float | None, code: str | None, message: Any,
             served_by: Any, result_status: Any, rects: list[dict[str, Any]]) -> None:
        self.health.record(latency_ms, status != "OK")
        image = call.image
        thumbnail = None
        if self._thumbnails and image is not None and image.array is not None:
            thumbnail = take_thumbnail(image.array, image.color_space, self._thumbnail_width)
        self.recent.add(CallRecord(
            id=self.recent.next_id(), at=time.time(), pid=call.pid, phase=call.phase, status=status,
            result_status=None if result_status is None else str(result_status), latency_ms=latency_ms,
            error_code=code, message=None if message is None else str(message),
            served_by=served_by if isinstance(served_by, dict) else None, defect_rects=rects, thumbnail=thumbnail))
