"""Request bodies read by the kernel straight into memory the handler names.

uvicorn hands a body to the app in chunks: every socket read becomes a bytes object, httptools copies
it for ``on_body``, uvicorn appends that to the request's buffer and copies the buffer into the ASGI
message, and the handler copies the message into its target. For a 6.9 MB image that is four copies
and about 27 pause/resume/wake-up cycles per upload, most of the daemon's CPU for the call. When the
handler knows where the rest of a body belongs (a raw image, once its header said its size),
``BodyInto.read_into`` points the connection's transport at a buffered protocol whose buffer *is*
that memory (a worker's shared-memory segment): one copy, done by the kernel's ``recv``. Then the
connection goes back to uvicorn's protocol with a fresh parser, positioned at the next request (the
old parser never saw those bytes).

``DirectBodyHttpProtocol`` (uvicorn's httptools protocol, given to uvicorn as ``http=``) offers the
reader to the app as the ASGI extension ``procvision.body_into`` of each request whose body has a
Content-Length. It relies on uvicorn's protocol internals (its request cycle, parser and flow
control): ``tests/api/test_upload_socket_to_memory.py`` runs them against the uvicorn installed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import httptools
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

#: The ASGI extension key (``scope["extensions"]``) under which a request's ``BodyInto`` is offered.
BODY_INTO = "procvision.body_into"


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The body's length if the request has exactly one plain Content-Length (header names are
    lower case here, as uvicorn stores them)."""
    if any(name == b"transfer-encoding" for name, _ in headers):
        return None
    values = [value.strip() for name, value in headers if name == b"content-length"]
    if len(values) != 1 or not values[0].isdigit():
        return None
    return int(values[0])


class BodyInto:
    """The rest of one request's body, read into memory the caller names (the ASGI extension)."""

    def __init__(self, protocol: DirectBodyHttpProtocol, scope: object, length: int) -> None:
        self._protocol = protocol
        self._scope = scope
        #: The body's Content-Length.
        self.length = length
        #: Bytes the socket wrote straight into a caller's memory (the rest came in ASGI messages).
        self.direct_bytes = 0

    def _cycle(self) -> RequestResponseCycle | None:
        protocol = self._protocol
        cycle = protocol.cycle
        if (cycle is None or cycle.scope is not self._scope or protocol.transport is None
                or protocol.transport.is_closing() or cycle.disconnected or cycle.response_complete):
            return None
        return cycle

    @property
    def unread(self) -> int | None:
        """Bytes of the body the app has not received yet; None when they cannot be read directly now
        (the connection is closing, the answer was sent, or a pipelined request was parsed after
        this one)."""
        cycle = self._cycle()
        if cycle is None:
            return None
        return self.length - (self._protocol.body_seen - len(cycle.body))

    async def read_into(self, *targets: memoryview) -> None:
        """Fill ``targets``, in order, with the rest of the body; their lengths must add up to
        ``unread`` (ValueError otherwise). Raises ClientDisconnect if the client goes away first.
        Cancelled part-way, the connection is closed once its answer is sent."""
        cycle = self._cycle()
        unread = self.unread
        wanted = sum(len(target) for target in targets)
        if cycle is None or unread is None or wanted != unread:
            raise ValueError(f"read_into needs exactly the {unread} unread body bytes, not {wanted}")
        protocol = self._protocol
        if cycle.waiting_for_100_continue:
            protocol.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cycle.waiting_for_100_continue = False
        # Bytes received with the headers or before this call, not yet delivered, go first.
        held = memoryview(cycle.body)
        rest: list[memoryview] = []
        for target in targets:
            take = min(len(held), len(target))
            target[:take] = held[:take]
            held = held[take:]
            if take < len(target):
                rest.append(target[take:])
        held.release()
        cycle.body = type(cycle.body)()  # bytearray in uvicorn 0.3x+, bytes before
        if rest:
            await protocol.read_rest_into(cycle, rest)
            self.direct_bytes += sum(len(view) for view in rest)


#: What a finished reader points at instead of the caller's memory.
_NOTHING = memoryview(bytearray(0))


class _SocketToMemory(asyncio.BufferedProtocol):
    """The connection's protocol while the kernel writes a body into ``targets``, in order. Once
    done (or cut off) it lets go of them at once: the transport may keep a reference to this
    object until the connection's next switch, and the memory is a worker's segment that must not
    stay pinned after its call."""

    def __init__(self, owner: DirectBodyHttpProtocol, cycle: RequestResponseCycle, targets: list[memoryview],
                 done: asyncio.Future[None]) -> None:
        self._owner, self._cycle, self._done = owner, cycle, done
        self._targets = list(reversed(targets))  # the one being filled last: pop() moves on
        self._filled = 0  # of the current target
        self.total = 0

    def get_buffer(self, sizehint: int) -> memoryview:
        # Never more than the body's rest: bytes of a pipelined next request stay in the socket.
        return self._targets[-1][self._filled:] if self._targets else _NOTHING

    def buffer_updated(self, nbytes: int) -> None:
        self.total += nbytes
        self._filled += nbytes
        if self._filled < len(self._targets[-1]):
            return
        self._targets.pop()
        self._filled = 0
        if not self._targets and not self._done.done():
            self._owner.direct_body_done(self.total)
            self._done.set_result(None)

    def eof_received(self) -> None:
        # The client ended its side inside the body: returning None lets the transport close, and
        # connection_lost then reports the disconnect.
        self._owner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._targets.clear()
        self._owner.connection_lost(exc)
        if not self._done.done():
            self._done.set_exception(ClientDisconnect())

    def pause_writing(self) -> None:
        self._owner.pause_writing()

    def resume_writing(self) -> None:
        self._owner.resume_writing()

    def abandon(self) -> None:
        """The read was cancelled part-way (a deadline, a shutdown): the parser has lost its place in
        the stream, so nothing more is read and the connection closes after the answer."""
        owner = self._owner
        self._targets.clear()
        if owner.transport.get_protocol() is self:
            owner.transport.set_protocol(owner)
        owner.flow.pause_reading()
        self._cycle.keep_alive = False


class DirectBodyHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, offering ``BodyInto`` to requests with a Content-Length body."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Body bytes of the current request the parser (or a direct read) has taken from the socket.
        self.body_seen = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.body_seen = 0

    def on_headers_complete(self) -> None:
        length = _content_length(self.headers)
        if length and self.scheme == "http":  # a TLS transport is left to uvicorn's own path
            scope = cast(dict[str, Any], self.scope)
            scope.setdefault("extensions", {})[BODY_INTO] = BodyInto(self, self.scope, length)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self.body_seen += len(body)
        super().on_body(body)

    async def read_rest_into(self, cycle: RequestResponseCycle, targets: list[memoryview]) -> None:
        """Let the socket fill ``targets`` in order (the part of the body the parser has not seen)."""
        done: asyncio.Future[None] = self.loop.create_future()
        sink = _SocketToMemory(self, cycle, targets, done)
        self.transport.set_protocol(sink)
        self.flow.resume_reading()
        try:
            await done
        except asyncio.CancelledError:
            sink.abandon()
            raise

    def direct_body_done(self, nbytes: int) -> None:
        """The rest of the body is in place: back to HTTP parsing, at the start of the next request."""
        self.transport.set_protocol(self)
        self.body_seen += nbytes
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # httptools < 0.6.3 has no leniencies to set
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn sets it
        self.on_message_complete()


__all__ = ["BODY_INTO", "BodyInto", "DirectBodyHttpProtocol"]
