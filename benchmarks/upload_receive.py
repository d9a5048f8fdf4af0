"""Image uploads read by the socket straight into shared memory, against uvicorn's messages.

Run from the repository root::

    .venv/bin/python -m benchmarks.upload_receive [--rounds 3] [--calls 200] [--seconds 5]

Starts two daemons (``serve`` subprocesses) side by side with the no-op algorithm active: one with
``upload_socket_to_memory`` on (the default), one with it off (the body comes through uvicorn's
ASGI messages and is copied, as before). Then, in alternating rounds so both see the same machine,
sends the 1920x1200x3 image as a multipart ``.npy`` file (``pid`` first), as a raw ``.npy`` body
and as raw pixels: p50 of ``--calls`` sequential
calls, requests/s with 4 threads for ``--seconds`` s, and the daemon process's own CPU per call
(user + system from /proc; workers excluded) in each. Prints medians over the rounds and the
ratios off / on. Goal (issue #15): at most 3 ms of daemon CPU per call for this image. Never asserts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import urllib.parse
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from benchmarks.http_execute import (
    HEIGHT,
    NAME,
    PID,
    WIDTH,
    Caller,
    SlotCaller,
    build_modes,
    cpu_seconds,
    noop_package,
    sequential,
    throughput,
)
from benchmarks.settle import wait_until_settled
from tests.api.support import ServeProcess, install

MODES = ("multipart .npy", "raw .npy", "raw pixels")


class Daemon:
    """One ``serve`` subprocess with the no-op algorithm active."""

    def __init__(self, root: Path, zip_path: Path, socket_to_memory: bool) -> None:
        root.mkdir(parents=True)
        (root / "runner_config.json").write_text(json.dumps({"upload_socket_to_memory": socket_to_memory}),
                                                 encoding="utf-8")
        self.serve = ServeProcess(root, "--port", "0")
        url = self.serve.url()
        token_file = root / ".token"
        self.token = token_file.read_text().strip() if token_file.exists() else None
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", int(parsed.port or 80)
        with httpx.Client(base_url=url, timeout=300,
                          headers={"Authorization": f"Bearer {self.token}"} if self.token else {}) as client:
            op = install(client, zip_path)
            if op["state"] != "succeeded":
                raise SystemExit(f"install failed: {json.dumps(op)[:500]}")
            if client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0", "pids": [PID]}
                           ).status_code != 200:
                raise SystemExit("activate failed")
        wait_until_settled(self.serve.proc.pid)

    def measure(self, mode_name: str, pixels: np.ndarray, calls: int, seconds: float) -> tuple[float, float, float,
                                                                                                   float]:
        """p50 ms, daemon CPU ms per sequential call, req/s with 4 threads, daemon CPU ms per call then."""
        mode = next(m for m in build_modes(pixels) if m.name == mode_name)

        def make() -> Caller | SlotCaller:
            return Caller(self.host, self.port, self.token, mode)

        pid = self.serve.proc.pid
        before = cpu_seconds(pid)
        samples, _ = sequential(make, calls, 10)
        seq_cpu = (cpu_seconds(pid) - before) * 1000 / (calls + 10)
        before = cpu_seconds(pid)
        rps = throughput(make, 4, seconds)
        load_cpu = (cpu_seconds(pid) - before) * 1000 / max(1.0, rps * seconds)
        return statistics.median(samples), seq_cpu, rps, load_cpu

    def stop(self) -> None:
        self.serve.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    pixels = np.random.default_rng(0).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    results: dict[tuple[str, bool], list[tuple[float, float, float, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="pv-upload-receive-") as tmp_name:
        tmp = Path(tmp_name)
        zip_path = noop_package(tmp / "pkg")
        print("starting two daemons (socket_to_memory on / off) with the no-op algorithm...", file=sys.stderr)
        daemons = {on: Daemon(tmp / f"root-{on}", zip_path, on) for on in (True, False)}
        try:
            for round_index in range(args.rounds):
                order: list[bool] = [True, False] if round_index % 2 == 0 else [False, True]
                for on in order:
                    for mode in MODES:
                        results[(mode, on)].append(daemons[on].measure(mode, pixels, args.calls, args.seconds))
        finally:
            for daemon in daemons.values():
                daemon.stop()
    print(f"image {WIDTH}x{HEIGHT}x3 ({pixels.nbytes / 1e6:.1f} MB), medians of {args.rounds} alternating rounds")
    print(f"{'mode':<14} {'read':<17} {'p50 ms':>7} {'CPU ms/call':>12} {'req/s (4 thr)':>14} {'CPU ms/call':>12}")
    med: Callable[[list[float]], float] = statistics.median
    for mode in MODES:
        rows = {}
        for on in (False, True):
            runs = results[(mode, on)]
            rows[on] = tuple(med([run[i] for run in runs]) for i in range(4))
            label = "socket_to_memory" if on else "uvicorn messages"
            p50, seq_cpu, rps, load_cpu = rows[on]
            print(f"{mode:<14} {label:<17} {p50:7.2f} {seq_cpu:12.2f} {rps:14.1f} {load_cpu:12.2f}")
        off, on_ = rows[False], rows[True]
        print(f"{mode:<14} {'off / on':<17} {off[0] / on_[0]:6.2f}x {off[1] / on_[1]:11.2f}x "
              f"{on_[2] / off[2]:13.2f}x {off[3] / on_[3]:11.2f}x")
    print("goal (issue 15): daemon CPU <= 3 ms per call for this image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
