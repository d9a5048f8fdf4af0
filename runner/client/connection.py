"""One keep-alive HTTP/1.1 connection to the daemon, over TCP or its Unix socket (standard library only).

Why not ``http.client``: it cannot tell that the daemon closed an idle connection (uvicorn does
after ``http_keep_alive_s``) until a request sent on it has failed, so a camera program that paused
for a few seconds got ``BrokenPipeError`` or ``RemoteDisconnected`` on its next frame. And it spent about 100 us of CPU
per call (every answer's headers go through the ``email`` package), this about 40 us, on the path
whose budget is one millisecond. The local client sends small requests and gets small JSON answers; this does just that:
one write per request, answers with ``Content-Length`` or chunked bodies, and before each request a
non-blocking look at the socket: a connection the daemon closed is replaced before anything is sent,
so a call is never sent twice. A connection idle for ``max_idle_s`` is replaced too, without looking:
the daemon may be closing it just as the request leaves (its close then resets the connection and
the request is lost), so the client gives it up a little before the daemon's keep-alive runs out.
"""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

#: An answer's status line and headers together may not be longer (the daemon's are under 1 KB).
MAX_HEAD_BYTES = 64 * 1024
#: Nor its body: a bound against a runaway answer (the daemon's are JSON of a few KB).
MAX_BODY_BYTES = 256 * 1024 * 1024
#: A connection idle this long is replaced before the next request: a second under the daemon's
#: default ``http_keep_alive_s`` (5 s). Set it under the daemon's value if that is lower.
DEFAULT_MAX_IDLE_S = 4.0
#: Bytes asked of one recv: answers are small, and a larger request makes CPython allocate (and
#: the C library map and unmap) a buffer of that size on every call.
_RECV_BYTES = 64 * 1024
#: A request body under this size goes out in the same write as the head.
_JOIN_BELOW = 64 * 1024
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_FORBIDDEN = re.compile(r"[\r\n\0]")
#: Headers this connection writes itself.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})


def _tokens(value: str) -> list[str]:
    """The comma-separated tokens of a header value, lower-case (``Connection: Close, TE``)."""
    return [token.strip().lower() for token in value.split(",") if token.strip()]


def _number(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ProtocolError(f"unusable {what} in the daemon's answer: {text[:40]!r}")
    return int(text)


class ProtocolError(OSError):
    """The daemon's answer is not HTTP/1.1 this client can read (or the connection ended mid-answer)."""


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, headers with lower-case names, the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    """A keep-alive connection, opened on first use and again whenever the daemon closed it.

    ``timeout_s`` bounds the connect and every read and write; ``max_idle_s``: a connection unused
    this long is replaced before the next request (keep it under the daemon's ``http_keep_alive_s``).
    Not thread-safe.
    """

    def __init__(self, *, host: str | None = None, port: int | None = None, uds: str | None = None,
                 timeout_s: float = 60.0, max_idle_s: float = DEFAULT_MAX_IDLE_S) -> None:
        if (uds is None) == (host is None):
            raise ValueError("give either host (and port) or uds")
        self._host, self._port, self._uds = host, port or 80, uds
        self._timeout_s = timeout_s
        self._max_idle_s = max_idle_s
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._idle_since = 0.0
        #: Connections opened so far (the first included).
        self.opened = 0

    @property
    def authority(self) -> str:
        """The ``Host`` header's value."""
        if self._uds is not None:
            return "localhost"
        host = self._host or ""
        return f"[{host}]:{self._port}" if ":" in host else f"{host}:{self._port}"

    def dropped(self) -> bool:
        """Whether the open connection was closed by the daemon (or has bytes nobody asked for):
        the next request opens a new one. False when none is open."""
        sock = self._sock
        if sock is None:
            return False
        if self._buffer:
            return True  # bytes after the last answer: not a stream this client can go on reading
        # poll, not select: a client process may hold more than FD_SETSIZE (1024) descriptors.
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        if not poller.poll(0):
            return False
        try:
            sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        return True  # the end of the stream, or bytes no request asked for: not reusable either way

    def request(self, method: str, target: str, headers: Mapping[str, str] | None = None,
                body: bytes = b"") -> Answer:
        """Send one request and read its answer. Raises OSError (``ProtocolError`` included) when
        the daemon cannot be reached or answers something unreadable; the connection is closed then."""
        head = self._head(method, target, headers or {}, len(body))
        if self._sock is not None and (time.monotonic() - self._idle_since > self._max_idle_s or self.dropped()):
            self.close()
        sock = self._sock or self._connect()
        try:
            sock.sendall(head + body if len(body) < _JOIN_BELOW else head)
            if len(body) >= _JOIN_BELOW:
                sock.sendall(body)
            answer = self._read_answer(sock, method)
        except BaseException:
            self.close()
            raise
        if "close" in _tokens(answer.headers.get("connection", "")):
            self.close()
        self._idle_since = time.monotonic()
        return answer

    def _head(self, method: str, target: str, headers: Mapping[str, str], length: int) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.authority}", f"Content-Length: {length}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items() if name.lower() not in _OWN_HEADERS)
        for line in lines:
            if _FORBIDDEN.search(line):
                raise ValueError(f"a request line or header holds CR, LF or NUL: {line[:100]!r}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer.clear()

    def _connect(self) -> socket.socket:
        if self._uds is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self._timeout_s)
            try:
                sock.connect(self._uds)
            except BaseException:
                sock.close()
                raise
        else:
            assert self._host is not None
            sock = socket.create_connection((self._host, self._port), timeout=self._timeout_s)
            # Small requests and answers: send each at once rather than waiting for an ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self.opened += 1
        return sock

    def _fill(self, sock: socket.socket) -> None:
        data = sock.recv(_RECV_BYTES)
        if not data:
            raise ProtocolError("the daemon closed the connection before its answer was complete")
        self._buffer += data

    def _take(self, sock: socket.socket, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill(sock)
        taken = bytes(self._buffer[:size])
        del self._buffer[:size]
        return taken

    def _line(self, sock: socket.socket) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ProtocolError("the daemon's answer has a line longer than this client reads")
            self._fill(sock)
        return self._take(sock, end + 2)[:-2]

    def _read_answer(self, sock: socket.socket, method: str) -> Answer:
        while True:
            answer = self._read_one(sock, method)
            if not 100 <= answer.status < 200:
                return answer
            # An interim answer (100 Continue, 103 Early Hints): the final one follows.

    def _read_one(self, sock: socket.socket, method: str) -> Answer:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise ProtocolError(f"the daemon's answer head is longer than {MAX_HEAD_BYTES} bytes")
            self._fill(sock)
        head = self._take(sock, end + 4)[:-4].decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        if (len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3
                or not (parts[1].isascii() and parts[1].isdigit())):
            raise ProtocolError(f"not an HTTP/1.1 status line: {head[0][:100]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"not an HTTP header line: {line[:100]!r}")
            headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return Answer(status, headers, b"")
        codings = _tokens(headers.get("transfer-encoding", ""))
        if codings:
            if codings[-1] != "chunked" or len(codings) > 1:
                raise ProtocolError(f"a transfer coding this client does not read: {codings}")
            return Answer(status, headers, self._chunked(sock))
        length = headers.get("content-length")
        if length is None:
            # No length: the body runs to the end of the connection, which is not reused.
            body = bytearray(self._buffer)
            self._buffer.clear()
            while data := sock.recv(_RECV_BYTES):
                body += data
                if len(body) > MAX_BODY_BYTES:
                    raise ProtocolError(f"the daemon's answer is over {MAX_BODY_BYTES} bytes")
            headers["connection"] = "close"
            return Answer(status, headers, bytes(body))
        size = _number(length, "Content-Length")
        if size > MAX_BODY_BYTES:
            raise ProtocolError(f"the daemon's answer is over {MAX_BODY_BYTES} bytes ({size})")
        return Answer(status, headers, self._take(sock, size))

    def _chunked(self, sock: socket.socket) -> bytes:
        body = bytearray()
        while True:
            size_text = self._line(sock).split(b";", 1)[0].rstrip(b" \t")
            if not _HEX.fullmatch(size_text):
                raise ProtocolError(f"not a chunk size: {size_text[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                while self._line(sock):  # trailers, up to the empty line
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY_BYTES:
                raise ProtocolError(f"the daemon's answer is over {MAX_BODY_BYTES} bytes")
            body += self._take(sock, size)
            if self._take(sock, 2) != b"\r\n":
                raise ProtocolError("a chunk of the daemon's answer does not end with CRLF")
