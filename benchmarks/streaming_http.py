"""A minimal HTTP/1.1 client for oversized bodies: it keeps sending until the server answers.

httpx and http.client send the whole body before reading the answer, so a server that answers 413
early and closes shows up as a write error there. This client checks for an answer between pieces.
"""

from __future__ import annotations

import re
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

CHUNK = 1 << 20
#: Longest wait for the answer once the body is sent (or the server stopped taking it).
ANSWER_DEADLINE_S = 300.0
#: A server that neither reads nor answers for this long has stopped taking the body.
SEND_STALL_S = 30.0


@dataclass
class Answer:
    """What the server answered to an oversized body, and how much of the body it took first."""

    status: int | None
    code: str | None
    sent_mb: float
    note: str = ""
    body: bytes = b""

    def text(self) -> str:
        status = "no answer" if self.status is None else str(self.status)
        code = f" {self.code}" if self.code else ""
        return f"{status}{code} after {self.sent_mb:.0f} MB sent{(' (' + self.note + ')') if self.note else ''}"


def send_streaming(url: str, token: str | None, path: str, headers: dict[str, str], body: Iterator[bytes],
                   chunked: bool) -> Answer:
    """POST ``body`` to ``url`` + ``path`` piece by piece; stop as soon as the server answers (or closes
    the connection) and read that answer. Every socket operation has a deadline."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=SEND_STALL_S)
    head = {"Host": parts.netloc, "Connection": "close", **headers}
    if token:
        head["Authorization"] = f"Bearer {token}"
    if chunked:
        head["Transfer-Encoding"] = "chunked"
    sock.sendall((f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n").encode())
    sent, note = 0, ""
    try:
        for piece in body:
            if select.select([sock], [], [], 0)[0]:
                note = "the daemon answered early"
                break
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
    except TimeoutError:
        note = f"the daemon stopped reading the body for {SEND_STALL_S:.0f} s"
    except OSError as exc:  # the daemon closed the connection mid-body
        note = f"connection closed while sending: {exc.strerror or exc}"
    sock.settimeout(ANSWER_DEADLINE_S)
    status, code, answer_body = _read_answer(sock)
    sock.close()
    return Answer(status, code, sent / (1 << 20), note, answer_body)


def _read_answer(sock: socket.socket) -> tuple[int | None, str | None, bytes]:
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data) < _expected_length(data):
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    except OSError:
        pass
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    if not match:
        return None, None, b""
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    code = re.search(rb'"(?:error_)?code"\s*:\s*"(\d{4})"', body)
    return int(match.group(1)), code.group(1).decode() if code else None, body


def _expected_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return len(head) + 4 + int(match.group(1)) if match else 1 << 62


def file_chunks(path: Path) -> Iterator[bytes]:
    """The bytes of ``path`` in CHUNK pieces (never all at once)."""
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(CHUNK), b"")


def repeated(prefix: bytes, filler: bytes, total: int, suffix: bytes) -> Iterator[bytes]:
    """``prefix``, then ``total`` bytes of ``filler`` repeated, then ``suffix``: a large body in pieces."""
    yield prefix
    left = total
    while left > 0:
        yield filler[:left]
        left -= len(filler)
    yield suffix
