"""Drop -> ready of a package with numpy, against ``python -m venv`` + ``pip install --no-index``, same run.

Run from the repository root::

    .venv/bin/python -m benchmarks.install_speed [--repeat 5] [--busy]

Builds a real package (the standard test algorithm, which imports numpy; numpy and the SDK wheel
bundled; wheels from ``.cache/wheels``), then measures, interleaved, ``--repeat`` times each:

1. baseline: ``python -m venv`` + ``venv/bin/python -m pip install --no-index --find-links wheels -r
   requirements.txt`` on the same wheels (no checks, no smoke test: what a plain pip-based runner does);
2. runner cold: the zip renamed into a fresh root's ``zips/`` (empty wheel cache, empty wheelhouse) until
   the drop folder reports the version installed: archive checks, trust, extraction, venv, wheels,
   protocol smoke test, publish to ``deployed/``, registry record. As on a station, the runner has
   started first: what the daemon does as it starts (the sandbox probe, and the installer's warm-up:
   interpreter probe, uv's interpreter cache; ``runner/package/warm_up.py``) ran before the drop and
   is timed on its own;
3. runner warm: another version of the same algorithm (same wheels) dropped into that root, once the
   first one has settled (its background bytecode compile, timed separately, has ended).

Prints the median of each, the time of each install stage (from the installer's own progress
stages), and the ratios baseline / runner. ``--busy`` runs two ``while True`` processes (both cores
of a 2-core station) for the whole measurement and ends them afterwards. Goals (issue #15): warm < 1 s,
cold < 3 s, >= 10x faster than the baseline, also with ``--busy``. A benchmark prints; it never asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from runner.config import Settings
from runner.errors import RunnerError
from runner.package.installer import Installer, InstallResult, Progress
from runner.package.watcher import DropFolderWatcher
from runner.store.registry import Registry
from runner.supervision.sandbox.selection import select_sandbox
from tests.support.packages import build_package, manifest_for, runtime_wheels

TIMEOUT_S = 600.0
BUSY_LOOP = "while True:\n    pass\n"


class TimedInstaller(Installer):
    """The real installer, noting when each progress stage starts (the last install's stage times)."""

    stage_times: dict[str, float]

    def install(self, zip_path: Path, progress: Progress | None = None) -> InstallResult:
        marks: list[tuple[str, float]] = []

        def note(stage: str) -> None:
            marks.append((stage, time.perf_counter()))
            if progress is not None:
                progress(stage)

        try:
            return super().install(zip_path, note)
        finally:
            marks.append(("end", time.perf_counter()))
            self.stage_times = {stage: end - start for (stage, start), (_, end) in zip(marks, marks[1:], strict=False)}


def package(dest: Path, version: str) -> Path:
    """The test algorithm (imports numpy) as an offline zip: numpy + the SDK wheel bundled."""
    return build_package(dest, manifest=manifest_for("speed_algo", version), wheels=runtime_wheels())


class Station:
    """One runner on a fresh root: its installer and drop-folder watcher, kept across installs as the
    daemon keeps them (so a warm install finds what the cold one left: interpreter probe, caches).
    Like the daemon, it runs the installer's start-up warm-up first (timed on its own)."""

    def __init__(self, root: Path) -> None:
        self.settings = Settings(root=root)
        self.installer = TimedInstaller(self.settings, Registry(self.settings.layout))
        self._done = threading.Event()
        self._outcome: list[InstallResult | RunnerError] = []
        self.watcher = DropFolderWatcher(self.settings, self.installer, self._on_result)
        self.watcher.start()
        # What the daemon does as it starts (it announces the sandbox, which probes it, and starts
        # the installer's warm-up); a drop comes after it.
        started = time.perf_counter()
        select_sandbox(self.settings)
        for thread in self.installer.warm_up():
            thread.join(TIMEOUT_S)
        self.warm_up_s = time.perf_counter() - started

    def _on_result(self, _path: Path, result: InstallResult | RunnerError) -> None:
        self._outcome.append(result)
        self._done.set()

    def drop_and_wait(self, zip_path: Path) -> tuple[float, dict[str, float]]:
        """Rename ``zip_path`` into the drop folder; seconds until it is installed, and its stages (plus
        the background bytecode compile after it was ready, waited for before returning)."""
        self._done.clear()
        self._outcome.clear()
        started = time.perf_counter()
        os.rename(zip_path, self.settings.layout.zips / zip_path.name)
        if not self._done.wait(TIMEOUT_S):
            raise SystemExit("the install did not finish in time")
        elapsed = time.perf_counter() - started
        if not isinstance(self._outcome[0], InstallResult):
            raise SystemExit(f"install failed: {self._outcome[0]}")
        compile_started = time.perf_counter()
        if not self.installer.bytecode.wait(TIMEOUT_S):
            raise SystemExit("the bytecode compile did not finish in time")
        return elapsed, {**self.installer.stage_times, "bytecode (after ready)": time.perf_counter() - compile_started}

    def close(self) -> None:
        self.watcher.stop()


def baseline(zip_path: Path, work: Path) -> float:
    """``python -m venv`` + ``pip install --no-index --find-links wheels`` of the same wheels."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(work)  # a zip this script just built; the runner itself never does this
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True, timeout=TIMEOUT_S)
    subprocess.run([str(work / "venv/bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-index", "--find-links", str(work / "wheels"), "-r", str(work / "requirements.txt")],
                   check=True, timeout=TIMEOUT_S)
    return time.perf_counter() - started


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """``count`` processes spinning ``while True`` for the duration; ended (by pid) afterwards."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(timeout=30)


def _stage_line(label: str, runs: list[dict[str, float]]) -> str:
    stages = list(runs[0])
    parts = [f"{stage} {statistics.median(r.get(stage, 0.0) for r in runs) * 1000:.0f}" for stage in stages]
    return f"  {label:<6} ms: " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement (medians are shown)")
    parser.add_argument("--busy", action="store_true", help="keep two cores busy with while-True processes")
    args = parser.parse_args()
    cold, warm, base = [], [], []
    cold_stages: list[dict[str, float]] = []
    warm_stages: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="pv-install-speed-") as tmp, \
            (busy_cores(2) if args.busy else contextlib.nullcontext()):
        work = Path(tmp)
        for run in range(args.repeat):
            base.append(baseline(package(work / f"pkg{run}c", "0.9.0"), work / f"base{run}"))
            station = Station(work / f"root{run}")
            try:
                seconds, stages = station.drop_and_wait(package(work / f"pkg{run}a", "1.0.0"))
                cold.append(seconds)
                cold_stages.append(stages)
                seconds, stages = station.drop_and_wait(package(work / f"pkg{run}b", "1.0.1"))
                warm.append(seconds)
                warm_stages.append(stages)
            finally:
                station.close()
            print(f"run {run + 1}: baseline {base[-1]:.2f} s, cold {cold[-1]:.2f} s, warm {warm[-1]:.2f} s "
                  f"(start-up warm-up before them: {station.warm_up_s:.2f} s)",
                  flush=True)
    b, c, w = statistics.median(base), statistics.median(cold), statistics.median(warm)
    load = "two cores kept busy" if args.busy else "no extra load"
    print(f"\ndrop -> ready, package with numpy, median of {args.repeat} ({load}):")
    print(f"  baseline      : {b:6.2f} s   (python -m venv + pip install --no-index, no checks, no smoke test)")
    print(f"  runner cold   : {c:6.2f} s   (goal < 3 s)   baseline/cold : {b / c:5.1f}x")
    print(f"  runner warm   : {w:6.2f} s   (goal < 1 s)   baseline/warm : {b / w:5.1f}x  (goal >= 10x)")
    print("stages (median):")
    print(_stage_line("cold", cold_stages))
    print(_stage_line("warm", warm_stages))


if __name__ == "__main__":
    main()
