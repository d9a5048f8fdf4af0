"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand.

The format is a few lines of text; a dependency for it is not worth its weight. Everything here is
thread-safe: installs finish on the operations thread, calls on request threads, worker events on
supervisor threads.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable

from runner.supervision.states import State, SupervisorEvent

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Call latency buckets in seconds: vision calls run from a few ms to the 5 s execute deadline.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Histogram:
    def __init__(self, buckets: Iterable[float]) -> None:
        self.bounds = tuple(buckets)
        self.counts = [0] * len(self.bounds)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1


class Metrics:
    """Counters, a latency histogram and worker-state gauges of one daemon."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._installs: dict[Labels, int] = {}
        self._calls: dict[Labels, int] = {}
        self._latency: dict[Labels, _Histogram] = {}
        self._restarts: dict[Labels, int] = {}
        self._crashes: dict[Labels, int] = {}
        self._worker_state: dict[tuple[str, str, int], str] = {}
        self._collectors: list[Callable[[], list[str]]] = []

    def add_collector(self, collect: Callable[[], list[str]]) -> None:
        """Add exposition lines computed at each scrape (e.g. the trust store's gauges)."""
        self._collectors.append(collect)

    def record_install(self, outcome: str, source: str = "api") -> None:
        """One finished install; ``outcome`` is succeeded / failed / idempotent."""
        key: Labels = (("outcome", outcome), ("source", source))
        with self._lock:
            self._installs[key] = self._installs.get(key, 0) + 1

    def record_call(self, name: str, version: str, status: str, latency_s: float | None) -> None:
        """One execute call; ``status`` is OK, ERROR or the error name of a failed call."""
        key: Labels = (("name", name), ("version", version), ("status", status))
        with self._lock:
            self._calls[key] = self._calls.get(key, 0) + 1
            if latency_s is not None:
                hkey: Labels = (("name", name), ("version", version))
                hist = self._latency.get(hkey)
                if hist is None:
                    hist = self._latency[hkey] = _Histogram(LATENCY_BUCKETS_S)
                hist.observe(max(0.0, latency_s))

    def on_event(self, event: SupervisorEvent) -> None:
        """Supervisor event sink: track worker states, restarts and crashes."""
        key: Labels = (("name", event.name), ("version", event.version))
        with self._lock:
            if event.kind == "state" and event.new_state is not None:
                self._worker_state[(event.name, event.version, event.worker)] = event.new_state.value
            elif event.kind == "restart":
                self._restarts[key] = self._restarts.get(key, 0) + 1
            elif event.kind == "crash":
                self._crashes[key] = self._crashes.get(key, 0) + 1

    def forget_version(self, name: str, version: str) -> None:
        """Drop the worker gauges of an uninstalled version."""
        with self._lock:
            for wkey in [k for k in self._worker_state if k[0] == name and k[1] == version]:
                del self._worker_state[wkey]

    def render(self) -> str:
        """The exposition text."""
        out: list[str] = []
        with self._lock:
            self._counter(out, "procvision_installs_total", "Finished installs by outcome.", self._installs)
            self._counter(out, "procvision_calls_total", "Execute calls by version and status.", self._calls)
            out.append("# HELP procvision_call_latency_seconds Execute call latency seen by the runner.")
            out.append("# TYPE procvision_call_latency_seconds histogram")
            for labels, hist in sorted(self._latency.items()):
                for bound, count in zip(hist.bounds, hist.counts, strict=True):
                    le = labels + (("le", _number(bound)),)
                    out.append(f"procvision_call_latency_seconds_bucket{_labels(le)} {count}")
                inf = labels + (("le", "+Inf"),)
                out.append(f"procvision_call_latency_seconds_bucket{_labels(inf)} {hist.total}")
                out.append(f"procvision_call_latency_seconds_sum{_labels(labels)} {_number(hist.sum)}")
                out.append(f"procvision_call_latency_seconds_count{_labels(labels)} {hist.total}")
            self._counter(out, "procvision_worker_restarts_total", "Worker restarts by version.",
                          self._restarts)
            self._counter(out, "procvision_worker_crashes_total", "Worker crashes by version.", self._crashes)
            gauges: dict[Labels, int] = {}
            for (name, version, _worker), state in self._worker_state.items():
                gkey: Labels = (("name", name), ("version", version), ("state", state))
                gauges[gkey] = gauges.get(gkey, 0) + 1
            # Every state appears for every version, so a dashboard sees a worker leave a state.
            versions = sorted({(n, v) for n, v, _w in self._worker_state})
            out.append("# HELP procvision_workers Workers by version and state.")
            out.append("# TYPE procvision_workers gauge")
            for name, version in versions:
                for state in State:
                    gkey = (("name", name), ("version", version), ("state", state.value))
                    out.append(f"procvision_workers{_labels(gkey)} {gauges.get(gkey, 0)}")
        for collect in self._collectors:
            out.extend(collect())
        return "\n".join(out) + "\n"

    @staticmethod
    def _counter(out: list[str], name: str, help_text: str, values: dict[Labels, int]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} counter")
        for labels, value in sorted(values.items()):
            out.append(f"{name}{_labels(labels)} {value}")
