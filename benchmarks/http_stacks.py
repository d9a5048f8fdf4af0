"""Which uvicorn stack receives a 7 MB upload fastest? httptools / h11 x uvloop / asyncio, measured.

Run from the repository root::

    .venv/bin/python -m benchmarks.http_stacks [--calls 150]

For each combination, uvicorn serves a bare ASGI app (in a thread of this process) that reads a
1920x1200x3 uint8 body and copies it into an array, as the /execute route does; one keep-alive
client sends it ``--calls`` times. Printed: p50 latency, the event loop thread's CPU per request and
the number of body chunks, and each stack's ratio to httptools + uvloop (what ``serve`` uses).
Prints; never asserts.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import sys
import threading
import time
from typing import Any

import numpy as np
import uvicorn

from tests.support.waiting import wait_until

STACKS = (("httptools", "uvloop"), ("httptools", "asyncio"), ("h11", "uvloop"), ("h11", "asyncio"))


class BodyApp:
    """Reads the whole body into a preallocated array (what the streaming sink does)."""

    def __init__(self, nbytes: int) -> None:
        self.dest = np.empty(nbytes, dtype=np.uint8)
        self.chunks: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        filled = count = 0
        while True:
            message = await receive()
            body = message.get("body", b"")
            if body:
                self.dest[filled:filled + len(body)] = np.frombuffer(body, dtype=np.uint8)
                filled += len(body)
            count += 1
            if not message.get("more_body"):
                break
        self.chunks.append(count)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def thread_cpu_s(native_id: int) -> float:
    with open(f"/proc/self/task/{native_id}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(http_impl: str, loop: str, body: bytes, calls: int, warmup: int) -> tuple[float, float, float]:
    """(p50 ms, loop CPU ms per request, chunks per request)."""
    app = BodyApp(len(body))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, http=http_impl, loop=loop, log_level="error", lifespan="off"))
    ids: list[int] = []

    def serve() -> None:
        ids.append(threading.get_native_id())
        server.run(sockets=[sock])

    thread = threading.Thread(target=serve, name=f"uvicorn-{http_impl}-{loop}", daemon=True)
    thread.start()
    wait_until(lambda: server.started, 60.0, "uvicorn to start")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        def call() -> None:
            conn.request("POST", "/", body=body, headers={"Content-Type": "application/octet-stream"})
            conn.getresponse().read()

        for _ in range(warmup):
            call()
        app.chunks.clear()
        cpu_before = thread_cpu_s(ids[0])
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            call()
            samples.append((time.perf_counter() - started) * 1000)
        cpu_ms = (thread_cpu_s(ids[0]) - cpu_before) * 1000 / calls
        return statistics.median(samples), cpu_ms, statistics.mean(app.chunks)
    finally:
        conn.close()
        server.should_exit = True
        thread.join(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)
    body = np.random.default_rng(0).integers(0, 256, size=1200 * 1920 * 3, dtype=np.uint8).tobytes()
    print(f"{len(body) / 1e6:.1f} MB body, {args.calls} sequential requests per stack")
    print(f"{'http':<10} {'loop':<8} {'p50 ms':>8} {'loop CPU ms/req':>16} {'chunks':>7}  p50 / httptools+uvloop")
    base: float | None = None
    for http_impl, loop in STACKS:
        p50, cpu_ms, chunks = measure(http_impl, loop, body, args.calls, args.warmup)
        base = base if base is not None else p50
        print(f"{http_impl:<10} {loop:<8} {p50:8.2f} {cpu_ms:16.2f} {chunks:7.0f}  {p50 / base:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
