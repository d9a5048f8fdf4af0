"""The last N execute calls, in memory: what the console's "Recent calls" list shows."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from .thumbnails import Thumbnail

__all__ = ["CallRecord", "RecentCalls"]


@dataclass(slots=True)
class CallRecord:
    """One finished call: its result as the route returned it (read apart only when the console
    asks, so recording stays a few attribute stores), or the error it raised, and a thumbnail."""

    id: int
    at: float
    pid: str
    phase: str
    latency_ms: float | None
    result: dict[str, Any] | None = None
    error_code: str | None = None
    message: str | None = None
    thumbnail: Thumbnail | None = None

    @property
    def status(self) -> str:
        return str(self.result.get("status") or "ERROR") if self.result is not None else "ERROR"

    def to_dict(self) -> dict[str, Any]:
        """The JSON the console reads (the thumbnail as a URL and the original image size)."""
        result = self.result or {}
        raw = result.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        rects = data.get("defect_rects")
        served_by = result.get("served_by")
        code = result.get("error_code", self.error_code)
        message = result.get("message", self.message)
        thumb = self.thumbnail
        return {"id": self.id, "at": self.at, "pid": self.pid, "phase": self.phase, "status": self.status,
                "result_status": None if data.get("result_status") is None else str(data["result_status"]),
                "latency_ms": self.latency_ms, "error_code": None if code is None else str(code),
                "message": None if message is None else str(message),
                "served_by": served_by if isinstance(served_by, dict) else None,
                "defect_rects": [r for r in rects if isinstance(r, dict)] if isinstance(rects, list) else [],
                "thumbnail": f"/console/calls/{self.id}/thumbnail.png" if thumb is not None else None,
                "image_width": thumb.source_width if thumb is not None else None,
                "image_height": thumb.source_height if thumb is not None else None}


class RecentCalls:
    """A bounded ring of ``CallRecord``; the oldest falls out when a new one comes in."""

    def __init__(self, keep: int) -> None:
        self._ring: deque[CallRecord] = deque(maxlen=max(1, keep))
        # Ids start at the daemon's start time in milliseconds, so a browser that cached a thumbnail
        # of an earlier run never shows it for a call of this one.
        self._ids = itertools.count(int(time.time() * 1000))
        self._lock = threading.Lock()

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self._ring.append(record)

    def list(self, limit: int | None = None) -> list[CallRecord]:
        """Newest first."""
        with self._lock:
            items = list(self._ring)
        items.reverse()
        return items if limit is None else items[:limit]

    def get(self, call_id: int) -> CallRecord | None:
        with self._lock:
            for record in self._ring:
                if record.id == call_id:
                    return record
        return None
