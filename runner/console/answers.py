"""The console routes' answers as models, so ``/openapi.json`` documents them like the API's own."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class RecentCall(BaseModel):
    """One recent execute call as the console lists it (``CallRecord.to_dict``)."""

    id: int
    at: float
    pid: str
    phase: str
    status: str
    result_status: str | None = None
    latency_ms: float | None = None
    error_code: str | None = None
    message: str | None = None
    served_by: dict[str, Any] | None = None
    defect_rects: list[dict[str, Any]] = []
    thumbnail: str | None = None
    image_width: int | None = None
    image_height: int | None = None


class HealthPointOut(BaseModel):
    """One second of calls: count, errors and latency percentiles (None without calls)."""

    t: int
    calls: int
    errors: int
    p50_ms: float | None = None
    p99_ms: float | None = None


class HealthSeries(BaseModel):
    """Per-second points over the window asked for, oldest first."""

    points: list[HealthPointOut]


class VersionSize(BaseModel):
    """Disk use of one installed version (its package folder and venv), in bytes."""

    name: str
    version: str
    size_bytes: int | None = None
