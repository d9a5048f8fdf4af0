"""Drop -> installed time of the example algorithm through the real drop folder and install pipeline.

Run from the repository root::

    .venv/bin/python -m benchmarks.install [--repeat 3]

Builds the example package (``example-algorithm/``: numpy + the SDK wheel) with
``tests.support.packages``, then measures, in one run:

1. cold: rename the zip into a fresh root's drop folder with an empty uv cache, until the registry says
   ``installed`` (checks, extraction, uv venv + install, protocol smoke test, publish);
2. warm: the same with another version of the package on the same root (warm uv cache);
3. baseline: ``python -m venv`` + ``pip install --no-index --find-links wheels -r requirements`` on the
   extracted package (what a plain pip-based runner does, without any checks or smoke test).

Prints each time and the ratio baseline / warm. Targets: warm <= 2 s, cold <= 8 s, >= 5x faster than the
baseline. A benchmark prints; it never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from runner.config import Settings
from runner.errors import RunnerError
from runner.package.installer import Installer, InstallResult
from runner.package.watcher import DropFolderWatcher
from runner.store.registry import Registry
from tests.support.packages import build_package, runtime_wheels

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example-algorithm"
TIMEOUT_S = 600.0


def example_package(dest: Path, version: str) -> Path:
    """The example algorithm as an offline package zip with the given version."""
    manifest = json.loads((EXAMPLE / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = version
    files = {str(p.relative_to(EXAMPLE)): p.read_bytes() for p in sorted(EXAMPLE.rglob("*"))
             if p.is_file() and p.name != "manifest.json" and "__pycache__" not in p.parts
             and p.name != "requirements.txt"}
    # The example states its version in code too (get_info must agree with the manifest).
    algorithm = "defect_detector/algorithm.py"
    files[algorithm] = files[algorithm].replace(b'VERSION = "1.0.0"', f'VERSION = "{version}"'.encode())
    reqs = (EXAMPLE / "requirements.txt").read_text(encoding="utf-8")
    return build_package(dest, manifest=manifest, files=files, wheels=runtime_wheels(),
                         requirements="procvision-algorithm-sdk\n" + reqs)


def drop_and_wait(root: Path, uv_cache: Path, package: Path) -> float:
    """Rename ``package`` into ``root``'s drop folder; seconds until it is installed."""
    settings = Settings(root=root, uv_cache_dir=uv_cache)
    registry = Registry(settings.layout)
    installer = Installer(settings, registry)
    done = threading.Event()
    outcome: list[InstallResult | RunnerError] = []

    def on_result(_path: Path, result: InstallResult | RunnerError) -> None:
        outcome.append(result)
        done.set()

    watcher = DropFolderWatcher(settings, installer, on_result)
    watcher.start()
    try:
        started = time.perf_counter()
        os.rename(package, settings.layout.zips / package.name)
        if not done.wait(TIMEOUT_S):
            raise SystemExit("the install did not finish in time")
        elapsed = time.perf_counter() - started
    finally:
        watcher.stop()
    if not isinstance(outcome[0], InstallResult):
        raise SystemExit(f"install failed: {outcome[0]}")
    return elapsed


def baseline(package: Path, work: Path) -> float:
    """``python -m venv`` + ``pip install --no-index`` on the extracted package."""
    folder = work / "baseline"
    with zipfile.ZipFile(package) as zf:
        zf.extractall(folder)  # trusted zip we just built; the runner itself never does this
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True, timeout=TIMEOUT_S)
    subprocess.run([str(folder / "venv/bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-index", "--find-links", str(folder / "wheels"), "-r", str(folder / "requirements.txt")],
                   check=True, timeout=TIMEOUT_S)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (median is shown)")
    args = parser.parse_args()
    cold, warm, base = [], [], []
    with tempfile.TemporaryDirectory(prefix="pv-install-bench-") as tmp:
        work = Path(tmp)
        for run in range(args.repeat):
            root = work / f"root{run}"
            cache = work / f"uv-cache{run}"
            cold.append(drop_and_wait(root, cache, example_package(work / f"pkg{run}a", "1.0.0")))
            warm.append(drop_and_wait(root, cache, example_package(work / f"pkg{run}b", "1.0.1")))
            base.append(baseline(example_package(work / f"pkg{run}c", "1.0.2"), work / f"base{run}"))
            print(f"run {run + 1}: cold {cold[-1]:.2f} s, warm {warm[-1]:.2f} s, baseline {base[-1]:.2f} s",
                  flush=True)
    c, w, b = statistics.median(cold), statistics.median(warm), statistics.median(base)
    print(f"\ndrop -> installed (median of {args.repeat}, includes checks + smoke test):")
    print(f"  cold uv cache : {c:6.2f} s   (target <= 8 s)")
    print(f"  warm uv cache : {w:6.2f} s   (target <= 2 s)")
    print(f"  baseline      : {b:6.2f} s   (python -m venv + pip install --no-index, no checks)")
    print(f"  baseline/warm : {b / w:6.1f}x  (target >= 5x)")


if __name__ == "__main__":
    main()
