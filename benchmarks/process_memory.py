"""Memory readings of processes and of the host, from /proc (Linux)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, VmSize... of ``pid`` in kB (empty once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in text.splitlines() if ":" in line)
            if v.strip().endswith("kB")}


def mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


class PeakWatch:
    """Peak RSS of some processes and the lowest host MemAvailable while the ``with`` block runs."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._pids = pids
        self.peak_kb: dict[int, int] = {}
        self.before_kb: dict[int, int] = {}
        self.min_available_kb = mem_available_kb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakWatch:
        for pid in self._pids():
            _reset_peak(pid)
            self.before_kb[pid] = status_kb(pid).get("VmRSS", 0)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._read()

    def _read(self) -> None:
        for pid in self._pids():
            st = status_kb(pid)
            self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), st.get("VmHWM", 0), st.get("VmRSS", 0))
        self.min_available_kb = min(self.min_available_kb, mem_available_kb())

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._read()


def _reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0); sampling VmRSS covers kernels without it."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")
