"""Where one ``POST /execute`` spent its time: the ``Server-Timing`` header and ``timing_ms``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

#: What the router reports about the call it ran (see ``ExecutionResult.phases_ms``).
CALL_PHASES = ("queue", "worker", "checks")


@dataclass
class CallTiming:
    """Phases of one call in milliseconds, measured with ``time.perf_counter``.

    ``receive``: reading the body (image bytes into their array); ``decode``: PNG/JPEG decoding and
    field checks; ``queue``: waiting for a free worker; ``worker``: the worker round trips (image
    handoff, frames, the algorithm); ``checks``: normalising and checking the reply; ``dispatch``:
    the rest of the call (thread hops, routing bookkeeping); ``total``: from the route's start.
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

    def finish(self, call_phases: Mapping[str, object] | None) -> dict[str, float]:
        """All phases plus ``total``. The ``call`` lap is split by the router's ``call_phases``
        (queue, worker, checks); what is left of it is ``dispatch``."""
        out = dict(self.phases)
        call = out.pop("call", None)
        if call is not None:
            parts = {name: float(value) for name, value in (call_phases or {}).items()
                     if name in CALL_PHASES and isinstance(value, int | float)}
            out.update(parts)
            out["dispatch"] = max(0.0, call - sum(parts.values()))
        out["total"] = (time.perf_counter() - self.started) * 1000
        return {name: round(value, 3) for name, value in out.items()}


def server_timing(phases: dict[str, float]) -> str:
    """The ``Server-Timing`` header value (RFC: ``name;dur=milliseconds``)."""
    return ", ".join(f"{name};dur={value:.3f}" for name, value in phases.items())
