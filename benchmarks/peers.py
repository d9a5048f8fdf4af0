"""The runner's POST /execute next to other ways of serving a model, measured in the same run.

Run from the repository root::

    .venv/bin/python -m benchmarks.peers [--calls 300] [--seconds 10] [--threads 4] [--skip ray]

Every server receives the same 1920x1200x3 uint8 image as a ``.npy`` multipart upload from one
keep-alive client, loads it and answers at once (a no-op model). Rows:

- this runner: ``POST /execute`` (isolated worker, shared memory), multipart and raw ``.npy`` bodies,
  and the zero-copy local path (the client writes the frame into a leased frame slot);
- FastAPI in one process, no isolation (uvicorn with h11, then with httptools);
- LitServe and Ray Serve, installed from PyPI into a cached venv (``.cache/peers-venv``). The first
  run says so and may take a few minutes; a peer that cannot be installed (no network, no wheel for
  this Python) is skipped with the reason. Nothing here is needed by the runner itself.

For each: p50 and p99 of ``--calls`` sequential calls, then requests/s with ``--threads`` threads
for ``--seconds`` s, and the ratio to the runner's multipart row. Prints; never asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from benchmarks.http_execute import (
    HEIGHT,
    PID,
    WIDTH,
    Caller,
    Mode,
    SlotCaller,
    build_modes,
    noop_package,
    percentile,
    sequential,
    throughput,
)
from benchmarks.settle import wait_until_settled
from runner.client import LocalClient
from tests.api.support import ServeProcess, install

REPO = Path(__file__).resolve().parents[1]
PEERS_VENV = REPO / ".cache" / "peers-venv"
INSTALL_TIMEOUT_S = 300
START_TIMEOUT_S = 120
PEER_PACKAGES = {"litserve": ["litserve==0.2.19"], "ray": ["ray[serve]==2.60.0"]}

FASTAPI_APP = '''
import io, sys
import numpy as np
import uvicorn
from fastapi import FastAPI, File, UploadFile

app = FastAPI()

@app.post("/predict")
async def predict(image: UploadFile = File(...)):
    arr = np.load(io.BytesIO(await image.read()), allow_pickle=False)
    return {"status": "OK", "shape": list(arr.shape)}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http=sys.argv[2], log_level="warning")
'''

LITSERVE_APP = '''
import io, sys
import numpy as np
import litserve as ls

class NoOp(ls.LitAPI):
    def setup(self, device):
        pass

    def decode_request(self, request):
        upload = request["image"]
        return np.load(io.BytesIO(upload.file.read()), allow_pickle=False)

    def predict(self, x):
        return list(x.shape)

    def encode_response(self, output):
        return {"status": "OK", "shape": output}

if __name__ == "__main__":
    ls.LitServer(NoOp(), accelerator="cpu").run(port=int(sys.argv[1]), generate_client_file=False)
'''

RAY_APP = '''
import io, sys, time
import numpy as np
import ray
from ray import serve
from starlette.requests import Request

@serve.deployment
class NoOp:
    async def __call__(self, request: Request):
        form = await request.form()
        data = await form["image"].read()
        arr = np.load(io.BytesIO(data), allow_pickle=False)
        return {"status": "OK", "shape": list(arr.shape)}

ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[1])})
serve.run(NoOp.bind(), route_prefix="/predict")
while True:
    time.sleep(3600)
'''


@dataclass
class Row:
    name: str
    p50: float
    p99: float
    rps: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peers_python(packages: list[str]) -> tuple[Path | None, str]:
    """The cached peers venv's python with ``packages`` installed, or (None, why not)."""
    python = PEERS_VENV / "bin" / "python"
    try:
        if not python.exists():
            print(f"creating {PEERS_VENV} for the peer servers (once)...", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True, timeout=120,
                           capture_output=True)
        marker = PEERS_VENV / (".ok-" + "-".join(packages).replace("/", "_"))
        if not marker.exists():
            print(f"installing {' '.join(packages)} from PyPI into {PEERS_VENV} (first run only; up to "
                  f"{INSTALL_TIMEOUT_S} s)...", file=sys.stderr)
            done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                   *packages, "numpy", "fastapi", "uvicorn", "python-multipart"],
                                  capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
            if done.returncode != 0:
                return None, f"pip install failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
            marker.touch()
    except subprocess.TimeoutExpired:
        return None, f"installing {' '.join(packages)} took over {INSTALL_TIMEOUT_S} s"
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"cannot prepare the venv: {exc}"
    return python, ""


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    """'' once ``port`` accepts connections; else why not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
            return f"the server exited ({proc.returncode}): {err.strip().splitlines()[-3:]}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return ""
        except OSError:
            time.sleep(0.2)
    return f"did not listen within {timeout_s:.0f} s"


def measure(name: str, host: str, port: int, token: str | None, mode: Mode, args: argparse.Namespace) -> Row | str:
    return measure_with(name, lambda: Caller(host, port, token, mode), args)


def measure_with(name: str, make: Callable[[], Caller | SlotCaller], args: argparse.Namespace) -> Row | str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:  # a server may listen before its model is deployed (Ray Serve): wait for a 200
        probe = make()
        try:
            status, data = probe.call()
        except OSError as exc:
            status, data = 0, str(exc).encode()
        finally:
            probe.close()
        if status == 200:
            break
        if time.monotonic() > deadline:
            return f"never answered 200 (last: {status} {data[:200]!r})"
        time.sleep(0.5)
    samples, _timing = sequential(make, args.calls, args.warmup)
    rps = throughput(make, args.threads, args.seconds)
    return Row(name, statistics.median(samples), percentile(samples, 99), rps)


def run_peer(name: str, python: Path, source: str, extra: list[str], pixels: np.ndarray, tmp: Path,
             args: argparse.Namespace) -> Row | str:
    script = tmp / f"{name.split()[0].lower()}_app.py"
    script.write_text(source, encoding="utf-8")
    port = free_port()
    # Its own process group: LitServe and Ray spawn helpers that outlive a terminated main process
    # (they were left running, eating the cores later measurements need); the group is ended whole.
    proc = subprocess.Popen([str(python), str(script), str(port), *extra], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=tmp, start_new_session=True)
    try:
        why = wait_listening(port, proc, START_TIMEOUT_S)
        if why:
            return why
        multipart = build_modes(pixels)[0]
        mode = Mode(multipart.name, "/predict", multipart.headers, multipart.body)
        return measure(name, "127.0.0.1", port, None, mode, args)
    finally:
        _end_group(proc)


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the peer's whole process group, SIGKILL to what is left after a grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # helpers that ignored SIGTERM
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def run_runner(pixels: np.ndarray, tmp: Path, args: argparse.Namespace) -> list[Row | tuple[str, str]]:
    root = tmp / "root"
    serve = ServeProcess(root, "--port", "0")
    rows: list[Row | tuple[str, str]] = []
    try:
        url = serve.url()
        parsed = urllib.parse.urlsplit(url)
        token_file = root / ".token"
        token = token_file.read_text().strip() if token_file.exists() else None
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"} if token else {},
                          timeout=300) as client:
            op = install(client, noop_package(tmp / "zips"))
            if op["state"] != "succeeded":
                raise SystemExit(f"install failed: {json.dumps(op)[:500]}")
            client.post("/algorithms/activate", json={"name": "noop", "version": "1.0.0", "pids": [PID]})
        wait_until_settled(serve.proc.pid)  # measured as a station serves: after the install's compile
        for mode in build_modes(pixels)[:2]:
            row = measure(f"this runner ({mode.name})", parsed.hostname or "127.0.0.1", int(parsed.port or 80),
                          token, mode, args)
            rows.append(row if isinstance(row, Row) else (f"this runner ({mode.name})", row))
        slot_row = measure_with("this runner (frame slot, zero-copy)",
                                lambda: SlotCaller(LocalClient(url, token), pixels), args)
        rows.append(slot_row if isinstance(slot_row, Row) else ("this runner (frame slot)", slot_row))
    finally:
        serve.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--skip", action="append", default=[], choices=["litserve", "ray", "fastapi"])
    args = parser.parse_args(argv)
    pixels = np.random.default_rng(0).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    results: list[Row | tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="pv-peers-") as tmp_name:
        tmp = Path(tmp_name)
        results.extend(run_runner(pixels, tmp, args))
        if "fastapi" not in args.skip:
            for http in ("h11", "httptools"):
                name = f"FastAPI one process ({http})"
                row = run_peer(name, Path(sys.executable), FASTAPI_APP, [http], pixels, tmp, args)
                results.append(row if isinstance(row, Row) else (name, row))
        for peer, label, source in (("litserve", "LitServe 0.2.19", LITSERVE_APP), ("ray", "Ray Serve 2.60", RAY_APP)):
            if peer in args.skip:
                results.append((label, "skipped (--skip)"))
                continue
            python, why = peers_python(PEER_PACKAGES[peer])
            if python is None:
                results.append((label, f"skipped: {why}"))
                continue
            row = run_peer(label, python, source, [], pixels, tmp, args)
            results.append(row if isinstance(row, Row) else (label, f"skipped: {row}"))
    base = next((r for r in results if isinstance(r, Row)), None)
    print(f"\n{WIDTH}x{HEIGHT}x3 uint8 as a .npy upload; {args.calls} sequential calls, then {args.threads} threads "
          f"for {args.seconds:g} s")
    print(f"{'server':<40} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7}  {'p50 vs runner':>13}")
    for row in results:
        if isinstance(row, Row):
            ratio = f"{row.p50 / base.p50:.1f}x" if base is not None else ""
            print(f"{row.name:<40} {row.p50:8.2f} {row.p99:8.2f} {row.rps:7.1f}  {ratio:>13}")
        else:
            print(f"{row[0]:<40} {row[1]}")
    print("goal (issue 15): the runner's p50 at least 5x below LitServe's and Ray Serve's, 2x their req/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
