"""Round-trip latency runner -> worker -> runner through the real Router, Supervisor and worker process.

Run from the repository root::

    .venv/bin/python -m benchmarks.call_latency [--calls 300] [--warmup 30]

Measures, for a no-op algorithm that only maps its input image:

1. a 1920x1200x3 image through shared memory (what the runner does);
2. the same image the upstream way: the runner ``np.save``s it to a file, the worker ``np.load``s it;
3. a header-only call (no image).

Prints p50/p99 of each and the ratio of (2) to (1), in two regimes:

- back-to-back: the next call starts as soon as the previous one returned (saturation). The no-op
  algorithm drops its array before replying, so each used segment is proved unused (file lease) and
  reused for a later call under a new id: a call costs one copy into warm pages;
- paced: ``--gap-ms`` (default 10 ms, i.e. under 100 calls/s per worker) between calls.

After each regime the worker's segment pool counts are printed (recycled: reused segments; refused:
segments another process still held, freed instead).

Targets: image p50 <= 1.5 ms, p99 <= 5 ms, header-only p50 <= 0.3 ms. A benchmark prints; it never
asserts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from procvision_algorithm_sdk.shared_memory import ImageSegment
from runner.config import Settings
from runner.package.installer import Installer
from runner.routing.router import Router
from runner.store.registry import INSTALLED, Registry
from runner.supervision.dialects import CallRequest, Dialect, ImageHandoff, ImageInput
from runner.supervision.supervisor import Supervisor
from tests.support.deploy import OURS, Deployer

ALGO = '''
import numpy as np

from procvision_algorithm_sdk import BaseAlgorithm, read_image_from_shared_memory


class Algo(BaseAlgorithm):
    def get_info(self):
        return {"name": "bench", "version": "1.0.0", "supported_pids": ["P1"], "steps": []}

    def pre_execute(self, step_index, pid, session, user_params, shared_mem_id, image_meta):
        return {"status": "OK", "message": "", "data": {}}

    def execute(self, step_index, pid, session, user_params, shared_mem_id, image_meta):
        path = user_params.get("file")
        if path:
            img = np.load(path, allow_pickle=False)
        elif shared_mem_id:
            img = read_image_from_shared_memory(shared_mem_id, image_meta)
        else:
            img = None
        shape = list(img.shape) if img is not None else []
        return {"status": "OK", "message": "", "data": {"result_status": "OK", "debug": {"shape": shape}}}
'''

WIDTH, HEIGHT = 1920, 1200


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _measure(name: str, call: Callable[[], None], calls: int, warmup: int, gap_ms: float = 0.0) -> list[float]:
    for _ in range(warmup):
        call()
        if gap_ms:
            time.sleep(gap_ms / 1000)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
        if gap_ms:
            time.sleep(gap_ms / 1000)  # outside the measured window: stands for the time between frames
    print(f"{name:<34} p50 {statistics.median(samples):7.3f} ms   p99 {_percentile(samples, 99):7.3f} ms   "
          f"min {min(samples):7.3f} ms   n={calls}")
    return samples


def _handoff_breakdown(pixels: np.ndarray, tmp: Path, calls: int, warmup: int, gap_ms: float) -> None:
    """Where the image path's time goes on the runner side (no worker involved)."""
    print("runner-side image handoff only:")
    image = ImageInput(array=pixels)
    for label, spares, gap in (("inline new segment (put+free)", 0, 0.0),
                               ("pooled, back-to-back (put+free)", 2, 0.0),
                               (f"pooled, {gap_ms:g} ms gap (put+free)", 2, gap_ms)):
        handoff = ImageHandoff(Dialect.PROCVISION, tmp / "handoff", spares=spares)

        def put_and_free(handoff: ImageHandoff = handoff) -> None:
            handoff.put(image)
            handoff.release_all()

        try:
            _measure(f"  {label}", put_and_free, calls, warmup, gap)
        finally:
            handoff.close()
    segment = ImageSegment.create_array(pixels)
    try:
        target = segment.array
        assert target is not None

        def reused_segment() -> None:
            target[...] = pixels

        _measure("  copy into a reused segment", reused_segment, calls, warmup)
    finally:
        segment.unlink()


def _print_pool_counts(supervisor: Supervisor) -> None:
    version_pool = supervisor.get("bench", "1.0.0")
    handoff = version_pool.workers[0].handoff if version_pool is not None else None  # diagnostics only
    segment_pool = handoff.pool if handoff is not None else None
    if segment_pool is not None:
        print(f"segment pool so far: recycled {segment_pool.recycled}, refused {segment_pool.refused}, "
              f"recycling {'on' if segment_pool.recycling else 'off: ' + str(segment_pool.last_recycle_error)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--gap-ms", type=float, default=10.0, help="pause between calls in the paced regime")
    args = parser.parse_args(argv)

    repo = Path(__file__).resolve().parents[1]
    venv_base = repo / ".cache" / "bench-venvs"
    with tempfile.TemporaryDirectory(prefix="pv-bench-") as tmp:
        root = Path(tmp) / "root"
        deployer = Deployer(root, venv_base)
        print("preparing the worker venv (first run builds it offline from .cache/wheels)...", file=sys.stderr)
        dep = deployer.deploy("bench", "1.0.0", ALGO, sdk=OURS)
        # Unboxed: the file-handoff baseline writes into this benchmark's own folder, which a boxed
        # worker cannot see; what the box costs a call is measured by benchmarks/sandbox_overhead.py.
        settings = Settings(root=root, shutdown_grace_s=2.0, sandbox="off")
        layout = deployer.layout
        registry = Registry(layout)
        registry.put({"name": "bench", "version": "1.0.0", "supported_pids": ["P1"], "state": INSTALLED,
                      "python": str(dep.python), "package_dir": None, "dialect": "procvision", "entry_point": None})
        supervisor = Supervisor(settings, layout)
        router = Router(settings, layout, registry, supervisor, Installer(settings, registry))
        try:
            router.activate("bench", "1.0.0", ["P1"])
            rng = np.random.default_rng(0)
            pixels = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
            image = ImageInput(array=pixels)
            handoff_dir = Path(tmp) / "files"
            handoff_dir.mkdir()

            def check(result_status: str, message: str) -> None:
                if result_status != "OK":
                    raise SystemExit(f"benchmark call failed: {message}")

            def shm_call() -> None:
                result = router.execute("P1", CallRequest(phase="execute", image=image))
                check(result.status, result.message)

            counter = iter(range(10**9))

            def file_call() -> None:
                path = handoff_dir / f"img-{next(counter)}.npy"
                np.save(path, pixels, allow_pickle=False)
                try:
                    result = router.execute("P1", CallRequest(phase="execute", user_params={"file": str(path)}))
                finally:
                    path.unlink(missing_ok=True)
                check(result.status, result.message)

            def header_call() -> None:
                result = router.execute("P1", CallRequest(phase="execute"))
                check(result.status, result.message)

            print(f"image {WIDTH}x{HEIGHT}x3 ({pixels.nbytes / 1e6:.1f} MB), "
                  f"{settings.workers_per_version} worker(s)")
            for regime, gap in (("back-to-back", 0.0), (f"paced, {args.gap_ms:g} ms between calls", args.gap_ms)):
                print(f"--- {regime}")
                shm = _measure("shared memory (runner)", shm_call, args.calls, args.warmup, gap)
                files = _measure("file handoff np.save/np.load", file_call, args.calls, args.warmup, gap)
                header = _measure("header only (no image)", header_call, args.calls, args.warmup, gap)
                _print_pool_counts(supervisor)
                ratio = statistics.median(files) / statistics.median(shm)
                ratio99 = _percentile(files, 99) / _percentile(shm, 99)
                print(f"file handoff / shared memory ratio: p50 {ratio:.1f}x, p99 {ratio99:.1f}x "
                      "(above 1 = shared memory is faster)")
                print(f"targets: image p50 <= 1.5 ms (got {statistics.median(shm):.3f}), p99 <= 5 ms "
                      f"(got {_percentile(shm, 99):.3f}), header-only p50 <= 0.3 ms "
                      f"(got {statistics.median(header):.3f})")
            _handoff_breakdown(pixels, Path(tmp), args.calls, args.warmup, args.gap_ms)
        finally:
            supervisor.shutdown(timeout_s=2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
