"""Where one /execute call's time went: the ``Server-Timing`` header and the JSON ``timing_ms``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class CallTiming:
    """Phases of one call in milliseconds, measured with ``time.perf_counter``.

    ``receive``: reading the body (image bytes into their array); ``decode``: PNG/JPEG decoding and
    field checks; ``call``: the router's own measure (queue wait, worker round trip, result checks);
    ``dispatch``: handing the call to a thread and back; ``total``: from the route's start.
    """

    started: float = field(default_factory=time.perf_counter)
    phases: dict[str, float] = field(default_factory=dict)
    _mark: float = 0.0

    def __post_init__(self) -> None:
        self._mark = self.started

    def lap(self, name: str) -> None:
        """Charge the time since the previous lap to ``name``."""
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + (now - self._mark) * 1000
        self._mark = now

    def finish(self, call_ms: float | None) -> dict[str, float]:
        """All phases plus ``total``; ``call_ms`` (the router's figure) splits the ``call`` lap."""
        out = dict(self.phases)
        if call_ms is not None and "call" in out:
            out["dispatch"] = max(0.0, out["call"] - call_ms)
            out["call"] = call_ms
        out["total"] = (time.perf_counter() - self.started) * 1000
        return {name: round(value, 3) for name, value in out.items()}


def server_timing(phases: dict[str, float]) -> str:
    """The ``Server-Timing`` header value (RFC: ``name;dur=milliseconds``)."""
    return ", ".join(f"{name};dur={value:.3f}" for name, value in phases.items())
