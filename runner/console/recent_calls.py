"""The last N execute calls, in memory: what the console's "Recent calls" list shows."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .thumbnails import Thumbnail

__all__ = ["CallRecord", "RecentCalls"]


@dataclass(frozen=True)
class CallRecord:
    """One finished call: who served it, how it ended, its rectangles and a thumbnail of its image."""

    id: int
    at: float
    pid: str
    phase: str
    status: str
    result_status: str | None
    latency_ms: float | None
    error_code: str | None
    message: str | None
    served_by: dict[str, Any] | None
    defect_rects: list[dict[str, Any]] = field(default_factory=list)
    thumbnail: Thumbnail | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON the console reads (the thumbnail as a URL and the original image size)."""
        thumb = self.thumbnail
        return {"id": self.id, "at": self.at, "pid": self.pid, "phase": self.phase, "status": self.status,
                "result_status": self.result_status, "latency_ms": self.latency_ms, "error_code": self.error_code,
                "message": self.message, "served_by": self.served_by, "defect_rects": self.defect_rects,
                "thumbnail": f"/console/calls/{self.id}/thumbnail.png" if thumb is not None else None,
                "image_width": thumb.source_width if thumb is not None else None,
                "image_height": thumb.source_height if thumb is not None else None}


class RecentCalls:
    """A bounded ring of ``CallRecord``; the oldest falls out when a new one comes in."""

    def __init__(self, keep: int) -> None:
        self._ring: deque[CallRecord] = deque(maxlen=max(1, keep))
        self._ids = itertools.count(1)
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
