"""What the worker sandbox costs: worker start time and call latency, boxed and unboxed, in one run.

Run from the repository root (bubblewrap installed)::

    .venv/bin/python -m benchmarks.sandbox_overhead [--starts 15] [--calls 300]

One real worker per mode (``sandbox: off`` and ``sandbox: auto``, i.e. bubblewrap) of a no-op
algorithm. Starts alternate between the modes so machine load hits both alike; each start is what a
worker slot does (``Launcher.launch``: contain and box the command; ``launch.handshake``: spawn, import,
hello), timed until the worker is ready. Calls are header-only and 1920x1200x3 images through
shared memory, also alternating.

Targets (issue 16): the box adds at most 50 ms to a worker's start and nothing measurable to a call.
A benchmark prints; it never asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

import numpy as np

from runner.config import Settings
from runner.supervision import CallRequest, ImageInput, Supervisor, VersionPool, WorkerSpec
from runner.supervision.launch import Launcher, handshake
from runner.supervision.sandbox import box_worker, select_sandbox
from tests.support.deploy import OURS, Deployer

ALGO = '''
from procvision_algorithm_sdk import BaseAlgorithm, read_image_from_shared_memory


class Algo(BaseAlgorithm):
    def get_info(self):
        return {"name": "bench", "version": "1.0.0", "supported_pids": ["P1"], "steps": []}

    def pre_execute(self, step_index, pid, session, user_params, shared_mem_id, image_meta):
        return {"status": "OK", "message": "", "data": {}}

    def execute(self, step_index, pid, session, user_params, shared_mem_id, image_meta):
        if shared_mem_id:
            read_image_from_shared_memory(shared_mem_id, image_meta)
        return {"status": "OK", "data": {"result_status": "OK", "defect_rects": []}}
'''
MODES: tuple[Literal["off", "auto"], ...] = ("off", "auto")
HEIGHT, WIDTH = 1200, 1920


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _timed_start(settings: Settings, spec: WorkerSpec, work_root: Path, index: int) -> float:
    """One worker start as the supervisor does it (box, spawn, import, handshake), in ms."""
    work_dir = work_root / f"w{index}"
    work_dir.mkdir()
    began = time.perf_counter()
    launched = Launcher(settings, dict(os.environ), None).launch(spec, index, work_dir, lambda _line: None,
                                                                 lambda *_args: None)
    handshake(launched.client, settings)
    elapsed = (time.perf_counter() - began) * 1000
    launched.client.shutdown(timeout=5.0, term_timeout=2.0)
    launched.end()
    shutil.rmtree(work_dir, ignore_errors=True)
    return elapsed


def _bare_starts(settings: Settings, spec: WorkerSpec, work_dir: Path, runs: int) -> dict[str, list[float]]:
    """``python -S -c pass`` from the worker's venv, plain and boxed, alternating: the box's own cost
    without the algorithm's imports."""
    argv = [str(spec.python), "-S", "-c", "pass"]
    boxed = box_worker(settings, argv, dict(os.environ), name=spec.name, version=spec.version,
                       package_dir=spec.package_dir, python=spec.python, work_dir=work_dir)
    samples: dict[str, list[float]] = {"off": [], "auto": []}
    for _ in range(runs):
        for mode, command, env in (("off", argv, dict(os.environ)), ("auto", boxed.argv, boxed.env)):
            began = time.perf_counter()
            subprocess.run(command, env=env, cwd=str(spec.package_dir), check=True, timeout=60)
            samples[mode].append((time.perf_counter() - began) * 1000)
    return samples


def _timed_call(pool: VersionPool, request: CallRequest) -> float:
    began = time.perf_counter()
    out = pool.call(request)
    elapsed = (time.perf_counter() - began) * 1000
    if not out.ok:
        raise SystemExit(f"benchmark call failed: {out.message}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=15)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="pv-bench-sandbox-") as tmp:
        deployer = Deployer(Path(tmp) / "root", repo / ".cache" / "bench-venvs")
        print("preparing the worker venv (first run builds it offline from .cache/wheels)...", file=sys.stderr)
        dep = deployer.deploy("bench", "1.0.0", ALGO, sdk=OURS)
        supervisors = {mode: Supervisor(Settings(root=deployer.layout.root, sandbox=mode, shutdown_grace_s=2.0),
                                        deployer.layout) for mode in MODES}
        boxed = select_sandbox(supervisors["auto"].settings)
        if boxed.name != "bubblewrap":
            print(f"bubblewrap is not usable here ({boxed.probe().reason}); install it first", file=sys.stderr)
            return 2
        try:
            pools = {mode: sup.start(dep.spec()) for mode, sup in supervisors.items()}
            starts: dict[str, list[float]] = {mode: [] for mode in MODES}
            work_root = Path(tempfile.mkdtemp(prefix="pv-bench-work-", dir="/dev/shm"))
            try:
                for index in range(args.starts):
                    for mode in MODES:
                        starts[mode].append(_timed_start(supervisors[mode].settings, dep.spec(), work_root,
                                                         index * len(MODES) + MODES.index(mode)))
                bare = _bare_starts(supervisors["auto"].settings, dep.spec(), work_root / "bare", args.starts * 2)
            finally:
                shutil.rmtree(work_root, ignore_errors=True)
            pixels = np.random.default_rng(0).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
            kinds = {"header-only": CallRequest("execute", pid="P1"),
                     "1920x1200 image": CallRequest("execute", pid="P1", image=ImageInput(array=pixels))}
            calls: dict[tuple[str, str], list[float]] = {}
            for kind, request in kinds.items():
                for mode in MODES:
                    for _ in range(20):  # warm-up
                        _timed_call(pools[mode], request)
                for _ in range(args.calls):
                    for mode in MODES:
                        calls.setdefault((kind, mode), []).append(_timed_call(pools[mode], request))
        finally:
            for sup in supervisors.values():
                sup.shutdown(timeout_s=2.0)
    print(f"worker start (spawn + import + handshake), {args.starts} starts per mode:")
    for mode in MODES:
        print(f"  sandbox {mode:4s}: median {statistics.median(starts[mode]):7.1f} ms   "
              f"p90 {_pct(starts[mode], 0.9):7.1f} ms")
    added = statistics.median(starts["auto"]) - statistics.median(starts["off"])
    print(f"  the box adds {added:+.1f} ms to the median start (target: <= 50 ms)")
    bare_added = statistics.median(bare["auto"]) - statistics.median(bare["off"])
    print(f"bare interpreter start (python -S -c pass), {len(bare['off'])} runs per mode: "
          f"plain median {statistics.median(bare['off']):.1f} ms, boxed {statistics.median(bare['auto']):.1f} ms "
          f"({bare_added:+.1f} ms: the box's own cost)")
    print(f"call latency, {args.calls} calls per mode:")
    for kind in kinds:
        off, box = calls[(kind, "off")], calls[(kind, "auto")]
        print(f"  {kind:16s} off p50 {_pct(off, 0.5):6.3f} ms p99 {_pct(off, 0.99):6.3f} ms | "
              f"boxed p50 {_pct(box, 0.5):6.3f} ms p99 {_pct(box, 0.99):6.3f} ms | "
              f"p50 ratio {_pct(box, 0.5) / _pct(off, 0.5):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
