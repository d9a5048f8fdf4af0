"""Calls, errors and latency per second over the last minutes, for the console's small charts.

Recording is O(1): the bucket of the current second gets a count and, while it has room, a latency
sample. Percentiles are computed only when the console asks.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["HealthPoint", "HealthSeries"]

#: Latency samples kept per second: enough for a stable p99 at station rates, bounded under bursts.
SAMPLES_PER_SECOND = 256


@dataclass
class _Bucket:
    second: int
    calls: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class HealthPoint:
    """One second: calls, errors, latency percentiles (None without calls)."""

    t: int
    calls: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None


def _percentile(sorted_values: list[float], q: float) -> float:
    index = max(0, math.ceil(q * len(sorted_values)) - 1)
    return sorted_values[index]


class HealthSeries:
    """A ring of ``window_s`` one-second buckets. ``clock`` (wall seconds) is injectable for tests."""

    def __init__(self, window_s: int, clock: Callable[[], float] = time.time) -> None:
        self._window = max(1, window_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._ring: list[_Bucket | None] = [None] * self._window

    def record(self, latency_ms: float | None, error: bool) -> None:
        """Count one call in the current second."""
        second = int(self._clock())
        slot = second % self._window
        with self._lock:
            bucket = self._ring[slot]
            if bucket is None or bucket.second != second:
                bucket = self._ring[slot] = _Bucket(second)
            bucket.calls += 1
            if error:
                bucket.errors += 1
            if latency_ms is not None and len(bucket.latencies_ms) < SAMPLES_PER_SECOND:
                bucket.latencies_ms.append(latency_ms)

    def points(self, last_s: int | None = None) -> list[HealthPoint]:
        """One point per second of the last ``last_s`` seconds (default: the window), oldest first;
        seconds without calls are zeros."""
        span = self._window if last_s is None else max(1, min(last_s, self._window))
        now = int(self._clock())
        with self._lock:
            buckets = {b.second: (b.calls, b.errors, list(b.latencies_ms)) for b in self._ring if b is not None}
        out: list[HealthPoint] = []
        for second in range(now - span + 1, now + 1):
            calls, errors, samples = buckets.get(second, (0, 0, []))
            samples.sort()
            out.append(HealthPoint(second, calls, errors, _percentile(samples, 0.5) if samples else None,
                                   _percentile(samples, 0.99) if samples else None))
        return out
