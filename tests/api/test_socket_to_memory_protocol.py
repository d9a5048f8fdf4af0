"""The socket-to-memory HTTP protocol under uvicorn, with a small ASGI app of its own: a direct read
cut off by the app's deadline closes that connection after its answer (the parser has lost its
place) and writes nothing more into the memory it was given; a finished read lets go of that memory
while its connection stays open; the server goes on serving others."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from runner.api.streaming.socket_to_memory import BODY_INTO, BodyInto, DirectBodyHttpProtocol
from tests.support.waiting import wait_until

#: The memory each request's body was read into, for the test to look at afterwards.
TARGETS: list[bytearray] = []


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body directly (deadline 0.5 s) and answers its byte sum, or 408."""
    assert scope["type"] == "http"
    direct = scope.get("extensions", {}).get(BODY_INTO)
    assert isinstance(direct, BodyInto)
    target = bytearray(direct.length)
    TARGETS.append(target)
    try:
        await asyncio.wait_for(direct.read_into(memoryview(target)), 0.5)
        status, body = 200, str(sum(target)).encode()
    except TimeoutError:
        status, body = 408, b"timed out"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def server() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # A keep-alive far past the test's waits: only the protocol itself may close a connection.
    config = uvicorn.Config(_app, http=DirectBodyHttpProtocol, loop="uvloop", lifespan="off", log_level="warning",
                            timeout_keep_alive=60)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: srv.started, 30.0, "uvicorn to start")
    try:
        yield sock.getsockname()[1]
    finally:
        srv.should_exit = True
        thread.join(30)


def _exchange(port: int, payload: bytes) -> bytes:
    """Send ``payload``; everything the server sends until it closes the connection (or 10 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # closed with some of the payload unread
        except TimeoutError:
            received += b"<still open>"
        return received


def _exported(buffer: bytearray) -> bool:
    """Whether something still holds a view of ``buffer`` (a bytearray with views cannot grow)."""
    try:
        buffer.append(0)
    except BufferError:
        return True
    del buffer[-1]
    return False


def _request(length: int, body: bytes) -> bytes:
    return f"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\n".encode() + body


def test_a_read_cut_off_by_a_deadline_closes_its_connection(server: int) -> None:
    TARGETS.clear()
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(_request(100_000, b"\x01" * 50_000))  # half the body, then silence
        received = b""
        while b"timed out" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        assert received.startswith(b"HTTP/1.1 408")
        # The rest arrives late: none of it may land in memory the handler has given up.
        with contextlib.suppress(OSError):  # the daemon may have closed the connection already
            sock.sendall(b"\x02" * 50_000)
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass  # closed with the late bytes unread: the kernel answers them with a reset
        except TimeoutError:
            pytest.fail("the connection stayed open after its cut-off read")
    assert len(TARGETS) == 1 and b"\x02" not in TARGETS[0]


def test_the_server_keeps_serving_after_a_cut_off_read(server: int) -> None:
    _exchange(server, _request(100_000, b"\x01" * 10))
    TARGETS.clear()
    body = bytes(range(256)) * 1000
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        for _ in range(2):  # keep-alive: the second request is parsed from a fresh parser
            sock.sendall(_request(len(body), body))
            answer = b""
            while not answer.endswith(str(sum(body)).encode()):
                chunk = sock.recv(65536)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            # The connection stays open, and the memory its body went into is no longer held by it
            # (in the daemon that memory is a worker's segment, reused and eventually unmapped).
            wait_until(lambda: not _exported(TARGETS[-1]), 10.0, "the body's memory to be let go")
