"""Does throughput scale with workers? Requests/s with ``workers_per_version`` = 1 and 2.

Run from the repository root::

    .venv/bin/python -m benchmarks.worker_scaling [--seconds 10] [--threads 4] [--cpu-ms 10]

For each worker count a fresh daemon (``serve`` subprocess) installs an algorithm that spends
``--cpu-ms`` of CPU per call, then ``--threads`` keep-alive clients send the 1920x1200x3 image as a
raw ``.npy`` body, then through frame slots, for ``--seconds`` s. Printed: requests/s, the ratio
2 workers / 1 worker (goal: >= 1.8 on 2 cores) and the daemon process's own CPU per call (user +
system from /proc, workers excluded; goal: <= 3 ms). Prints; never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from benchmarks.http_execute import HEIGHT, PID, WIDTH, Caller, SlotCaller, build_modes, cpu_seconds, throughput
from benchmarks.settle import wait_until_settled
from runner.client import LocalClient
from tests.api.support import ServeProcess, install
from tests.support.packages import build_package, manifest_for

NAME = "burner"
ALGO = '''
import time

from procvision_algorithm_sdk import BaseAlgorithm, read_image_from_shared_memory

CPU_S = {cpu_s!r}


class Algorithm(BaseAlgorithm):
    def get_info(self):
        return {{"name": "burner", "version": "1.0.0", "supported_pids": ["P001"], "steps": []}}

    def pre_execute(self, step_index, pid, session, user_params, shared_mem_id, image_meta):
        return {{"status": "OK", "message": "", "data": {{}}}}

    def execute(self, step_index, pid, session, user_params, shared_mem_id, image_meta):
        read_image_from_shared_memory(shared_mem_id, image_meta)
        end = time.thread_time() + CPU_S
        spins = 0
        while time.thread_time() < end:
            spins += 1
        return {{"status": "OK", "data": {{"result_status": "OK", "debug": {{"spins": spins}}}}}}
'''


def run(workers: int, zip_path: Path, tmp: Path, pixels: np.ndarray, seconds: float,
        threads: int, how: str) -> tuple[float, CpuPerCall]:
    root = tmp / f"root-{how}-{workers}"
    root.mkdir()
    (root / "runner_config.json").write_text(json.dumps({"workers_per_version": workers}), encoding="utf-8")
    serve = ServeProcess(root, "--port", "0")
    try:
        url = serve.url()
        token_file = root / ".token"
        token = token_file.read_text().strip() if token_file.exists() else None
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"} if token else {},
                          timeout=300) as client:
            op = install(client, zip_path)
            if op["state"] != "succeeded":
                raise SystemExit(f"install failed: {json.dumps(op)[:500]}")
            response = client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0", "pids": [PID]})
            if response.status_code != 200:
                raise SystemExit(f"activate failed: {response.text[:300]}")
        wait_until_settled(serve.proc.pid)  # the compile would take a core from the workers
        mode = next(m for m in build_modes(pixels) if m.name == "raw .npy")
        host, port = url.split("//", 1)[1].rsplit(":", 1)

        def make() -> Caller | SlotCaller:
            if how == "slot":
                return SlotCaller(LocalClient(url, token), pixels)
            return Caller(host, int(port), token, mode)

        throughput(make, threads, 2.0)  # warm-up: every worker mapped its first segments
        before = _cpu_now(serve.proc.pid)
        rps = throughput(make, threads, seconds)
        after = _cpu_now(serve.proc.pid)
        calls = max(1.0, rps * seconds)
        return rps, CpuPerCall(*(1000 * (b - a) / calls for a, b in zip(before, after, strict=True)))
    finally:
        serve.stop()


@dataclass
class CpuPerCall:
    """Milliseconds of CPU per call: the daemon itself, its workers (every process under it), this
    benchmark's client threads. Their sum against 2 cores shows where the machine's time went."""

    daemon: float
    workers: float
    client: float


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cpu_now(daemon_pid: int) -> tuple[float, float, float]:
    workers = 0.0
    for pid in _descendants(daemon_pid):
        try:
            workers += cpu_seconds(pid)
        except OSError:
            continue  # ended meanwhile
    return cpu_seconds(daemon_pid), workers, time.process_time()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--cpu-ms", type=float, default=10.0)
    parser.add_argument("--mode", action="append", choices=["raw", "slot"],
                        help="how the image travels: raw .npy body, or a frame slot (default: both)")
    args = parser.parse_args(argv)
    pixels = np.random.default_rng(0).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory(prefix="pv-scaling-") as tmp_name:
        tmp = Path(tmp_name)
        source = ALGO.format(cpu_s=args.cpu_ms / 1000.0)
        zip_path = build_package(tmp / "pkg", manifest=manifest_for(name=NAME, version="1.0.0", pids=(PID,)),
                                 files={"algo/__init__.py": "", "algo/main.py": source})
        print(f"{os.cpu_count()} cores; algorithm spends {args.cpu_ms:g} ms CPU per call; image "
              f"{WIDTH}x{HEIGHT}x3; {args.threads} client threads for {args.seconds:g} s")
        for how in args.mode or ["raw", "slot"]:
            results = {}
            for workers in (1, 2):
                rps, cpu = run(workers, zip_path, tmp, pixels, args.seconds, args.threads, how)
                results[workers] = rps
                total = cpu.daemon + cpu.workers + cpu.client
                print(f"{how:<5} workers_per_version={workers}: {rps:6.1f} req/s, daemon CPU {cpu.daemon:5.2f} ms "
                      f"per call (workers {cpu.workers:5.2f}, client {cpu.client:5.2f}, sum {total:5.2f}; "
                      f"{os.cpu_count()} cores allow {1000 * (os.cpu_count() or 1) / rps:5.2f} per call at this rate)")
            print(f"{how:<5} scaling 2 workers / 1 worker: {results[2] / results[1]:.2f}x (goal >= 1.8x); "
                  "daemon CPU goal <= 3 ms per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
