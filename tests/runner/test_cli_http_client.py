"""The CLI's HTTP client: deadlines on connect and on every read, problems decoded, uploads streamed."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.cli.client import ApiError, RunnerClient, Unreachable


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_connection_is_unreachable_with_a_hint() -> None:
    with RunnerClient(f"http://127.0.0.1:{_free_port()}", None, timeout_s=5) as client, \
            pytest.raises(Unreachable, match="is the daemon running"):
        client.list_versions()


def test_a_daemon_that_never_answers_hits_the_deadline(silent_server: str) -> None:
    started = time.monotonic()
    with RunnerClient(silent_server, "t", timeout_s=0.5) as client, pytest.raises(Unreachable, match="in time"):
        client.active()
    assert time.monotonic() - started < 30  # bounded by the deadline, not by the server


class _Recorder:
    """A one-shot HTTP server that records the request and answers with ``status`` and ``body``."""

    def __init__(self, status: int, body: dict[str, object], content_type: str = "application/json") -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.request = b""
        payload = json.dumps(body).encode()
        self.answer = (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
                       f"Connection: close\r\n\r\n").encode() + payload
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(30)
        conn, _ = self.server.accept()
        conn.settimeout(30)
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length")), 0)
            while len(body) < length:
                body += conn.recv(65536)
            self.request = head + b"\r\n\r\n" + body
            conn.sendall(self.answer)
        self.server.close()


def test_problem_documents_become_api_errors() -> None:
    rec = _Recorder(404, {"code": "2009", "name": "not_found", "detail": "no such version"},
                    content_type="application/problem+json")
    with RunnerClient(rec.url, "secret", timeout_s=10) as client, pytest.raises(ApiError) as info:
        client.show("a", "1")
    assert (info.value.status, info.value.code, info.value.name) == (404, "2009", "not_found")
    assert b"GET /algorithms/a/1 " in rec.request and b"Authorization: Bearer secret" in rec.request


def test_upload_is_multipart_with_the_whole_file(tmp_path: Path) -> None:
    zip_path = tmp_path / "pkg-v1-offline.zip"
    content = bytes(range(256)) * 4096  # 1 MiB, read in chunks while sending
    zip_path.write_bytes(content)
    rec = _Recorder(202, {"id": "op1", "state": "queued"})
    with RunnerClient(rec.url, None, timeout_s=10) as client:
        assert client.install(zip_path, idempotency_key="k1") == {"id": "op1", "state": "queued"}
    rec.thread.join(10)
    head, _, body = rec.request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /algorithms/install ")
    assert b"Idempotency-Key: k1" in head and b"multipart/form-data; boundary=" in head
    assert b'name="file"; filename="pkg-v1-offline.zip"' in body and content in body
