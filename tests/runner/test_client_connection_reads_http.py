"""The local client's HTTP/1.1 connection reads what a server may answer (lengths, chunks, a body to
the end of the stream) and refuses what it cannot read with an error, against scripted servers on a
real Unix socket; a server that does not answer fails the request within its deadline."""

from __future__ import annotations

import os
import resource
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.client.connection import Connection, ProtocolError
from tests.support.waiting import wait_until


class ScriptedServer:
    """Accepts connections on a Unix socket; answers the n-th request with ``answers[n]`` (bytes),
    closing the connection after it when the answer is followed by ``None``."""

    def __init__(self, path: Path, answers: list[bytes | None]) -> None:
        self.path = path
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(4)
        self._sock.settimeout(30)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(30)
                buffer = b""
                while self.answers:
                    while b"\r\n\r\n" not in buffer:
                        data = conn.recv(65536)
                        if not data:
                            break
                        buffer += data
                    if b"\r\n\r\n" not in buffer:
                        break
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    while len(buffer) < length and (data := conn.recv(65536)):
                        buffer += data
                    self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                    buffer = buffer[length:]
                    answer = self.answers.pop(0)
                    if answer is None:
                        break
                    conn.sendall(answer)
                    if self.answers and self.answers[0] is None:
                        self.answers.pop(0)
                        break

    def close(self) -> None:
        self._sock.close()
        self._thread.join(10)


Serve = Callable[[list[bytes | None]], tuple[ScriptedServer, Connection]]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    servers: list[ScriptedServer] = []

    def start(answers: list[bytes | None]) -> tuple[ScriptedServer, Connection]:
        server = ScriptedServer(tmp_path / f"s{len(servers)}", answers)
        servers.append(server)
        return server, Connection(uds=str(server.path), timeout_s=5.0)

    yield start
    for server in servers:
        server.close()


def test_content_length_answers_share_one_connection(serve: Serve) -> None:
    server, conn = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nhi",
                          b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"])
    first = conn.request("POST", "/x?a=1", {"X-Key": "k"}, b"body")
    assert (first.status, first.headers["x-a"], first.body) == (200, "1", b"hi")
    assert conn.request("GET", "/y").status == 404
    assert conn.opened == 1
    assert server.requests[0].startswith(b"POST /x?a=1 HTTP/1.1\r\n")
    assert b"Content-Length: 4\r\n" in server.requests[0] and server.requests[0].endswith(b"\r\n\r\nbody")
    assert b"X-Key: k\r\n" in server.requests[0]


def test_chunked_answer_is_joined(serve: Serve) -> None:
    _server, conn = serve([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n",
                           b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"])
    assert conn.request("GET", "/").body == b"abcde"
    assert conn.request("GET", "/").body == b"z"  # the chunked answer was read to its very end


def test_an_interim_answer_is_skipped(serve: Serve) -> None:
    _server, conn = serve([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"])
    answer = conn.request("POST", "/", body=b"x")
    assert (answer.status, answer.body) == (201, b"ok")


def test_answer_without_length_runs_to_the_end_and_the_next_request_reconnects(serve: Serve) -> None:
    _server, conn = serve([b"HTTP/1.1 200 OK\r\n\r\nall of it", None,
                           b"HTTP/1.1 204 No Content\r\n\r\n"])
    assert conn.request("GET", "/").body == b"all of it"
    assert conn.request("GET", "/").status == 204
    assert conn.opened == 2


def test_a_connection_the_server_closed_is_replaced_before_sending(serve: Serve) -> None:
    server, conn = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", None,
                          b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    conn.request("GET", "/a")
    wait_until(conn.dropped, 10.0, "the server to close the connection")
    assert conn.request("GET", "/b").status == 200
    assert [r.split(b" ")[1] for r in server.requests] == [b"/a", b"/b"]  # nothing sent twice
    assert conn.opened == 2


def test_a_connection_on_a_descriptor_above_1024_is_checked(serve: Serve) -> None:
    # select() cannot watch descriptors past FD_SETSIZE; a camera program may well hold that many.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 1200
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"this machine allows only {hard} open files per process")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    fillers: list[int] = []
    try:
        while not fillers or fillers[-1] < 1030:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        _server, conn = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", None,
                               b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
        conn.request("GET", "/a")
        wait_until(conn.dropped, 10.0, "the server to close the connection")
        assert conn.request("GET", "/b").status == 200
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_connection_unused_for_max_idle_is_replaced_without_waiting_for_the_close(tmp_path: Path) -> None:
    # The daemon may be closing it as the request leaves; the client gives it up first.
    server = ScriptedServer(tmp_path / "idle", [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                                                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                                                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    try:
        eager = Connection(uds=str(server.path), timeout_s=5.0, max_idle_s=0.0)
        eager.request("GET", "/a")
        assert not eager.dropped()  # the server keeps it open...
        eager.request("GET", "/b")
        assert eager.opened == 2  # ...yet it was replaced
        eager.close()  # the scripted server serves one connection at a time
        patient = Connection(uds=str(server.path), timeout_s=5.0, max_idle_s=60.0)
        patient.request("GET", "/c")
        assert patient.opened == 1
    finally:
        server.close()


def test_bytes_after_an_answer_make_the_connection_unusable(serve: Serve) -> None:
    # A second answer nobody asked for must not be taken as the next request's answer.
    server, conn = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                          b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale", None,
                          b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh"])
    assert conn.request("GET", "/a").body == b"ok"
    assert conn.dropped()
    assert conn.request("GET", "/b").body == b"fresh"
    assert conn.opened == 2


def test_connection_close_among_other_tokens_closes(serve: Serve) -> None:
    _server, conn = serve([b"HTTP/1.1 200 OK\r\nConnection: Close, TE\r\nContent-Length: 0\r\n\r\n", None,
                           b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    conn.request("GET", "/")
    conn.request("GET", "/")
    assert conn.opened == 2


def test_requests_with_line_breaks_in_headers_are_refused_before_sending(serve: Serve) -> None:
    server, conn = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        conn.request("GET", "/", {"X-Key": "k\r\nX-Injected: 1"})
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        conn.request("GET", "/ HTTP/1.1\r\nX: y")
    conn.request("GET", "/", {"host": "elsewhere", "Content-Length": "99"})  # its own are not doubled
    assert server.requests[0].count(b"Host:") + server.requests[0].count(b"host:") == 1
    assert b"Content-Length: 0\r\n" in server.requests[0] and b"99" not in server.requests[0]


def test_an_ipv6_host_is_bracketed() -> None:
    assert Connection(host="::1", port=8765).authority == "[::1]:8765"
    assert Connection(host="127.0.0.1", port=8765).authority == "127.0.0.1:8765"


@pytest.mark.parametrize("answer, message", [
    (b"HTTP/1.1 20 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 2\xb200 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n", "chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\n", "chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n", "chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "transfer coding"),
    (b"SMTP ready\r\n\r\n", "status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed the connection"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", "CRLF"),
])
def test_unreadable_answers_raise_protocol_errors(serve: Serve, answer: bytes, message: str) -> None:
    _server, conn = serve([answer, None])
    with pytest.raises(ProtocolError, match=message):
        conn.request("GET", "/")
    assert not conn.dropped()  # closed by the failed request: nothing open


def test_a_server_that_never_answers_fails_the_request_within_its_deadline(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "mute"))
    listener.listen(1)
    try:
        conn = Connection(uds=str(tmp_path / "mute"), timeout_s=0.3)
        with pytest.raises(TimeoutError):
            conn.request("GET", "/")
    finally:
        listener.close()


def test_host_or_socket_is_required() -> None:
    with pytest.raises(ValueError):
        Connection()
