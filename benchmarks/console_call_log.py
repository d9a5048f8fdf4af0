"""What the console adds to each /execute call: one record in the call log, against what the call
path already pays for the same image (copying it into the worker's shared-memory segment).

Run from the repository root::

    .venv/bin/python -m benchmarks.console_call_log [--calls 20000] [--width 1920 --height 1200]

Prints the median cost per call (microseconds) of: a record without a thumbnail (what most calls
pay: a health-bucket count and a small record), a record with a thumbnail (a strided copy of at most
``console_thumbnail_width`` pixels across; at most ``console_thumbnails_per_s`` calls a second pay
it), the older single 3-D strided copy the per-channel copy replaced, and the baseline measured in
the same run: one full copy of the image (the handoff into shared memory every call already makes).
Ratios are against that baseline, so the figures read the same on a busy machine. Target: a record
without a thumbnail within a few microseconds; with one, a small fraction of the full copy. A
benchmark prints; it never asserts.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from runner.console.call_log import CallLog
from runner.console.thumbnails import take_thumbnail
from runner.supervision.dialects import CallRequest, ImageInput

RESULT = {"status": "OK", "latency_ms": 5.0, "served_by": {"name": "a", "version": "1.0.0"},
          "data": {"result_status": "NG", "defect_rects": [{"x": 1, "y": 2, "width": 3, "height": 4}]}}


def _median_us(fn: Callable[[], object], calls: int, rounds: int = 7) -> float:
    per_round = max(1, calls // rounds)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(per_round):
            fn()
        samples.append((time.perf_counter() - started) / per_round * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1200)
    parser.add_argument("--thumbnail-width", type=int, default=160)
    args = parser.parse_args()
    image = np.random.default_rng(1).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    call = CallRequest(phase="execute", step_index=1, pid="P001", session_id=None, image=ImageInput(array=image))
    plain = CallLog(50, args.thumbnail_width, 600, thumbnails_per_s=0)
    always = CallLog(50, args.thumbnail_width, 600, thumbnails_per_s=1e9)
    step = max(1, -(-args.width // args.thumbnail_width))
    heavy = max(10, args.calls // 50)

    baseline = _median_us(image.copy, heavy)
    rows = [
        ("record, no thumbnail", _median_us(lambda: plain.record(call, dict(RESULT)), args.calls)),
        ("record + thumbnail", _median_us(lambda: always.record(call, dict(RESULT)), heavy)),
        ("thumbnail alone (per-channel copy)",
         _median_us(lambda: take_thumbnail(image, "RGB", args.thumbnail_width), heavy)),
        ("one 3-D strided copy (replaced)", _median_us(lambda: image[::step, ::step].copy(), heavy)),
    ]
    print(f"image {args.width}x{args.height} RGB; baseline: full image copy {baseline:.1f} us")
    for label, value in rows:
        print(f"  {label:36s} {value:9.2f} us   {value / baseline:7.4f} x baseline")


if __name__ == "__main__":
    main()
