"""What the execute route tells the console about each call: one small record, O(1) work."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from runner.errors import RunnerError
from runner.supervision.dialects import CallRequest

from .health_series import HealthSeries
from .recent_calls import CallRecord, RecentCalls
from .thumbnails import Thumbnail, take_thumbnail

__all__ = ["CallLog"]


class CallLog:
    """Recent calls (with thumbnails) and the per-second health series, fed by POST /execute.

    A thumbnail is a strided copy of a few thousand pixels (tens of microseconds); at most
    ``thumbnails_per_s`` calls a second get one, so a fast line pays it on a few calls only and
    every other call costs a counter and a small record. ``clock`` (monotonic) is injectable.
    """

    def __init__(self, keep: int, thumbnail_width: int, window_s: int, thumbnails_per_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.recent = RecentCalls(keep)
        self.health = HealthSeries(window_s)
        self._thumbnail_width = thumbnail_width
        self._thumbnail_every_s = 1.0 / thumbnails_per_s if thumbnails_per_s > 0 else None
        self._next_thumbnail_at = float("-inf")
        self._clock = clock

    def record(self, call: CallRequest, result: dict[str, Any]) -> None:
        """A call that produced a result (``status`` OK or ERROR). The result is kept as it is and
        read apart only when the console lists the calls."""
        latency = result.get("latency_ms")
        latency_ms = float(latency) if isinstance(latency, int | float) else None
        self.health.record(latency_ms, result.get("status") != "OK")
        self.recent.add(CallRecord(self.recent.next_id(), time.time(), call.pid, call.phase, latency_ms,
                                   result=result, thumbnail=self._thumbnail(call)))

    def record_failure(self, call: CallRequest, error: RunnerError, started: float) -> None:
        """A call the runner refused or could not complete (the route raises ``error``)."""
        latency_ms = (time.monotonic() - started) * 1000.0
        self.health.record(latency_ms, True)
        self.recent.add(CallRecord(self.recent.next_id(), time.time(), call.pid, call.phase, latency_ms,
                                   error_code=error.code, message=error.message, thumbnail=self._thumbnail(call)))

    def _thumbnail(self, call: CallRequest) -> Thumbnail | None:
        image = call.image
        if self._thumbnail_every_s is None or image is None or image.array is None:
            return None
        now = self._clock()
        if now < self._next_thumbnail_at:
            return None
        self._next_thumbnail_at = now + self._thumbnail_every_s
        return take_thumbnail(image.array, image.color_space, self._thumbnail_width)
