"""What reading a multipart ``/execute`` body costs in the daemon's own code, without HTTP.

Run from the repository root::

    .venv/bin/python -m benchmarks.multipart_parse [--calls 60] [--chunk 65536]

Feeds the body the HTTP benchmark sends (``pid`` field, then a 1920x1200x3 uint8 ``.npy`` as the
file ``image``) in ``--chunk``-byte chunks through ``receive_multipart`` (into a pooled array, as
when no worker segment is free), and the same ``.npy`` as a raw body through ``receive_raw``.
References measured in the same run: python-multipart's ``MultipartParser`` over the same chunks
(parsing only, the bytes go nowhere), ``bytes.find`` of the delimiter over the image (what any
parser that searches the part bytes pays), and copying the image once; measured in interleaved
rounds (median of the rounds' p50s). Prints p50s and ratios; never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import numpy as np
from python_multipart.multipart import MultipartParser

from runner.api.streaming.buffers import BufferPool
from runner.api.streaming.form import ReceivedBody, receive_multipart, receive_raw

BOUNDARY = b"pvbenchboundary7d1f"


def bodies(pixels: np.ndarray) -> tuple[bytes, bytes]:
    """The multipart body and the raw ``.npy`` body of ``pixels``."""
    buf = io.BytesIO()
    np.save(buf, pixels, allow_pickle=False)
    npy = buf.getvalue()
    head = (b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"pid\"\r\n\r\nP001\r\n--" + BOUNDARY
            + b"\r\nContent-Disposition: form-data; name=\"image\"; filename=\"frame.npy\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n")
    return head + npy + b"\r\n--" + BOUNDARY + b"--\r\n", npy


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[start:start + size] for start in range(0, len(data), size)]


async def stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def p50_ms(run: Callable[[], object], calls: int) -> float:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def p50_async_ms(make: Callable[[], Coroutine[Any, Any, ReceivedBody]], calls: int) -> float:
    async def timed() -> float:
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            body = await make()
            samples.append((time.perf_counter() - started) * 1000)
            body.release()
        return statistics.median(samples)

    return asyncio.run(timed())


def python_multipart(chunks: list[bytes]) -> None:
    parser = MultipartParser(BOUNDARY, {})
    for chunk in chunks:
        parser.write(chunk)
    parser.finalize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--chunk", type=int, default=65536, help="bytes per chunk (uvicorn hands on 64-256 KiB)")
    args = parser.parse_args()
    pixels = np.random.default_rng(0).integers(0, 256, size=(1200, 1920, 3), dtype=np.uint8)
    multipart, npy = bodies(pixels)
    form_chunks, raw_chunks = chunked(multipart, args.chunk), chunked(npy, args.chunk)
    pool = BufferPool()
    limit = 1 << 27
    delimiter = b"\r\n--" + BOUNDARY
    target = np.empty_like(pixels)

    def copy_once() -> None:
        target[...] = pixels

    runs: dict[str, Callable[[int], float]] = {
        "receive_multipart (ours)": lambda calls: p50_async_ms(
            lambda: receive_multipart(stream(form_chunks), BOUNDARY, limit, 1 << 20, pool), calls),
        "receive_raw (.npy body)": lambda calls: p50_async_ms(
            lambda: receive_raw(stream(raw_chunks), b"application/x-npy", None, limit, pool), calls),
        "python-multipart parse only": lambda calls: p50_ms(lambda: python_multipart(form_chunks), calls),
        "bytes.find over the image": lambda calls: p50_ms(lambda: npy.find(delimiter), calls),
        "copy the image once": lambda calls: p50_ms(copy_once, calls),
    }
    # Rounds interleave the measurements so that a busy spell of a shared machine hits them all.
    rounds = 5
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name].append(run(max(1, args.calls // rounds)))
    results = {name: statistics.median(values) for name, values in samples.items()}
    copy = results.pop("copy the image once")
    raw = results["receive_raw (.npy body)"]
    print(f"image 1920x1200x3 (6.9 MB) in {args.chunk}-byte chunks; copying it once: p50 {copy:.3f} ms")
    print(f"{'':30} {'p50 ms':>8} {'x raw':>7} {'x copy':>7}")
    for name, value in results.items():
        print(f"{name:30} {value:8.3f} {value / raw:7.2f} {value / copy:7.1f}")


if __name__ == "__main__":
    main()
