"""Histograms of where /execute calls spend their time (receive, decode, queue, worker, checks,
dispatch, total), and counts of where uploaded pixels landed.

Exported through ``Metrics.add_collector`` as ``procvision_execute_phase_seconds{phase=...}`` and
``procvision_execute_uploads_total{landed=...}`` and ``procvision_execute_upload_bytes_total{read=...}``.
"""

from __future__ import annotations

import threading

from runner.metrics import Labels, Metrics, _Histogram, _labels, _number

#: From a fraction of a millisecond (a fast-path receive) to the 5 s execute deadline.
PHASE_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
METRIC = "procvision_execute_phase_seconds"


class PhaseHistograms:
    """One histogram per phase; thread-safe; registers itself as a collector of ``metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self._lock = threading.Lock()
        self._by_phase: dict[str, _Histogram] = {}
        metrics.add_collector(self.render)

    def observe(self, phases_ms: dict[str, float]) -> None:
        with self._lock:
            for phase, value in phases_ms.items():
                hist = self._by_phase.get(phase)
                if hist is None:
                    hist = self._by_phase[phase] = _Histogram(PHASE_BUCKETS_S)
                hist.observe(max(0.0, value) / 1000.0)

    def render(self) -> list[str]:
        out = [f"# HELP {METRIC} Time of each phase of POST /execute (see Server-Timing).",
               f"# TYPE {METRIC} histogram"]
        with self._lock:
            for phase, hist in sorted(self._by_phase.items()):
                labels: Labels = (("phase", phase),)
                for bound, count in zip(hist.bounds, hist.counts, strict=True):
                    out.append(f"{METRIC}_bucket{_labels(labels + (('le', _number(bound)),))} {count}")
                out.append(f"{METRIC}_bucket{_labels(labels + (('le', '+Inf'),))} {hist.total}")
                out.append(f"{METRIC}_sum{_labels(labels)} {_number(hist.sum)}")
                out.append(f"{METRIC}_count{_labels(labels)} {hist.total}")
        return out


UPLOADS_METRIC = "procvision_execute_uploads_total"
BYTES_METRIC = "procvision_execute_upload_bytes_total"
READ_DIRECT, READ_STREAMED = "socket_to_memory", "streamed"
READS = (READ_DIRECT, READ_STREAMED)


class UploadLandings:
    """How many uploaded images landed where (``image_sink.LANDINGS``); thread-safe collector."""

    def __init__(self, metrics: Metrics, landings: tuple[str, ...]) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(landings, 0)
        self._bytes = dict.fromkeys(READS, 0)
        metrics.add_collector(self.render)

    def count_bytes(self, direct: int, streamed: int) -> None:
        """Image bytes of one upload: written by the socket into their memory / copied from messages."""
        with self._lock:
            self._bytes[READ_DIRECT] += direct
            self._bytes[READ_STREAMED] += streamed

    def count(self, landed: list[str]) -> None:
        with self._lock:
            for where in landed:
                self._counts[where] = self._counts.get(where, 0) + 1

    def render(self) -> list[str]:
        out = [f"# HELP {UPLOADS_METRIC} Uploaded images of POST /execute by where their pixels landed "
               "(worker_segment: passed to the worker without any copy).",
               f"# TYPE {UPLOADS_METRIC} counter"]
        with self._lock:
            for where, count in sorted(self._counts.items()):
                out.append(f"{UPLOADS_METRIC}{_labels((('landed', where),))} {count}")
            out += [f"# HELP {BYTES_METRIC} Image bytes of POST /execute uploads by how they were read "
                    f"({READ_DIRECT}: the socket wrote them into shared memory itself).",
                    f"# TYPE {BYTES_METRIC} counter"]
            for read, count in sorted(self._bytes.items()):
                out.append(f"{BYTES_METRIC}{_labels((('read', read),))} {count}")
        return out
