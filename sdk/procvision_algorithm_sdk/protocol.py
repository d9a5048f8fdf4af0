"""Length-prefixed JSON framing and message builders of the worker protocol.

A frame is a 4-byte big-endian unsigned length followed by that many bytes of UTF-8 JSON holding
one object. Both the adapter (worker side) and the runner (client side) use this module, so the
two can never disagree on framing. See ``docs/protocol.md``.
"""

from __future__ import annotations

import json
import os
import struct
import time
from typing import IO, Any

from .errors import ErrorCode

HEADER = struct.Struct(">I")
#: Largest frame either side accepts. Images never travel in frames (shared memory does that),
#: so 16 MiB is generous for results with debug payloads.
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
MAX_FRAME_ENV = "PROC_MAX_FRAME_BYTES"

# Message types.
HELLO = "hello"
PING = "ping"
PONG = "pong"
CALL = "call"
RESULT = "result"
ERROR = "error"
SHUTDOWN = "shutdown"

#: Capabilities of the public protocol that this SDK also speaks.
PUBLIC_CAPABILITIES: list[str] = ["ping", "call", "shutdown", "shared_memory:v1", "info"]
#: Capabilities this SDK adds. A runner uses them to tell our workers from upstream ones.
EXTENDED_CAPABILITIES: list[str] = [
    "pv:shm-posix:v1",  # images in real POSIX shared memory segments (ids start with "pvshm-")
    "pv:sessions:v1",  # session state survives from pre_execute to execute in one worker
    "pv:busy-pong:v1",  # pongs arrive while a call runs and say which request is running
    "pv:error-codes:v1",  # error frames carry error_code/error_name/fatal/retryable
    "pv:stdout-guard:v1",  # print() and fd-1 writes go to stderr, never into frames
    "pv:import-before-hello:v1",  # hello is sent only after the algorithm loaded
]

#: Capability of our adapter serving an execute-only algorithm: calls take the public 0.3.x shape
#: (current + guide image), with images in our shared memory.
EXECUTE_ONLY_CAPABILITY = "pv:execute-only:v1"
#: What the public 0.3.x adapter announces; ``execute`` marks the execute-only call shape.
PUBLIC_EXECUTE_ONLY_CAPABILITIES: list[str] = ["ping", "call", "shutdown", "shared_memory:v1", "execute"]


def hello_capabilities(style: str) -> list[str]:
    """The capabilities our adapter announces for an algorithm of ``style`` (``styles``)."""
    if style == "execute-only":
        # No sessions in this style; everything else our adapter adds still holds.
        extended = [c for c in EXTENDED_CAPABILITIES if c != "pv:sessions:v1"]
        return PUBLIC_EXECUTE_ONLY_CAPABILITIES + extended + [EXECUTE_ONLY_CAPABILITY]
    return PUBLIC_CAPABILITIES + EXTENDED_CAPABILITIES


class ProtocolError(Exception):
    """A framing or message error. ``error_code`` is the wire code that describes it."""

    error_code: str = ErrorCode.PROTOCOL_ERROR.value

    def __init__(self, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        if error_code is not None:
            self.error_code = error_code


class ConnectionClosed(ProtocolError):
    """The peer closed the stream (EOF) or sent the zero-length end marker."""


class FrameTooLarge(ProtocolError):
    """A frame declared a length over the limit.

    When read with ``skip_oversized`` the payload was skipped and the stream is in sync; otherwise
    the stream is not usable any more. ``header`` keeps the 4 raw bytes: printable text there means
    somebody wrote text into the stream rather than a frame.
    """

    error_code = ErrorCode.FRAME_TOO_LARGE.value

    def __init__(self, message: str, header: bytes = b"", length: int = 0) -> None:
        super().__init__(message)
        self.header = header
        self.length = length

    @property
    def looks_like_text(self) -> bool:
        # A frame header starts with 0x00 for any sane size; a first byte that is printable, a
        # tab/newline, or a UTF-8 byte (non-ASCII text) means text. Only the first byte counts: a
        # short print ("ok\n") is followed by the real frame's zero bytes inside the same 4 bytes.
        return len(self.header) == 4 and (32 <= self.header[0] < 127 or self.header[0] in (9, 10, 13)
                                          or self.header[0] >= 0xC2)


class MalformedFrame(ProtocolError):
    """A frame's payload is not a UTF-8 JSON object. The stream is still in sync."""


def max_frame_bytes() -> int:
    """The frame limit: ``$PROC_MAX_FRAME_BYTES`` if set, else the default."""
    raw = os.environ.get(MAX_FRAME_ENV)
    if raw:
        try:
            value = int(raw)
        except ValueError:
            return DEFAULT_MAX_FRAME_BYTES
        if value > 0:
            return value
    return DEFAULT_MAX_FRAME_BYTES


def now_ms() -> int:
    return int(time.time() * 1000)


def encode_frame(message: dict[str, Any], max_bytes: int | None = None) -> bytes:
    """Serialise one message into a frame. Raises FrameTooLarge if it would exceed the limit."""
    payload = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    limit = max_bytes if max_bytes is not None else DEFAULT_MAX_FRAME_BYTES
    if len(payload) > limit:
        raise FrameTooLarge(f"frame of {len(payload)} bytes exceeds the {limit}-byte limit")
    return HEADER.pack(len(payload)) + payload


def write_frame(stream: IO[bytes], message: dict[str, Any], max_bytes: int | None = None) -> None:
    """Write one frame and flush. The caller serialises concurrent writers."""
    stream.write(encode_frame(message, max_bytes))
    stream.flush()


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunks: list[bytes] = []
    remaining = n
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            raise ConnectionClosed("stream closed in the middle of a frame" if chunks or n != remaining
                                   else "stream closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _skip(stream: IO[bytes], n: int) -> None:
    remaining = n
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionClosed("stream closed while skipping an oversized frame")
        remaining -= len(chunk)


def read_frame(stream: IO[bytes], max_bytes: int | None = None, skip_oversized: bool = True) -> dict[str, Any]:
    """Read one frame and return its JSON object.

    Raises ConnectionClosed on EOF or a zero length, FrameTooLarge when the length exceeds
    ``max_bytes`` (after skipping the payload if ``skip_oversized``; a reader that cannot trust its
    peer passes False, since a corrupt header could announce gigabytes that never come), and
    MalformedFrame when the payload is not a JSON object.
    """
    header = stream.read(HEADER.size)
    if not header:
        raise ConnectionClosed("stream closed")
    if len(header) < HEADER.size:
        header += _read_exact(stream, HEADER.size - len(header))
    (length,) = HEADER.unpack(header)
    if length == 0:
        raise ConnectionClosed("zero-length frame (end of stream marker)")
    limit = max_bytes if max_bytes is not None else DEFAULT_MAX_FRAME_BYTES
    if length > limit:
        if skip_oversized:
            _skip(stream, length)
        raise FrameTooLarge(f"frame of {length} bytes exceeds the {limit}-byte limit", header, length)
    payload = _read_exact(stream, length)
    try:
        message = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedFrame(f"frame is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise MalformedFrame(f"frame holds a JSON {type(message).__name__}, not an object")
    if not isinstance(message.get("type"), str):
        raise MalformedFrame("frame has no string 'type' field")
    return message


# --- message builders (worker side) -------------------------------------------------------------

def make_hello(sdk_version: str, capabilities: list[str], **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": HELLO, "sdk_version": sdk_version, "timestamp_ms": now_ms(),
                           "capabilities": list(capabilities)}
    msg.update(extra)
    return msg


def make_pong(request_id: Any, busy: bool = False, busy_request_id: str | None = None) -> dict[str, Any]:
    return {"type": PONG, "request_id": request_id, "timestamp_ms": now_ms(), "status": "OK",
            "busy": busy, "busy_request_id": busy_request_id}


def make_result(request_id: str, status: str, message: str, data: dict[str, Any],
                **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": RESULT, "request_id": request_id, "timestamp_ms": now_ms(),
                           "status": status, "message": message, "data": data}
    msg.update(extra)
    return msg


def make_error(request_id: str | None, message: str, error_code: str, **extra: Any) -> dict[str, Any]:
    from .errors import error_name

    msg: dict[str, Any] = {"type": ERROR, "request_id": request_id, "timestamp_ms": now_ms(),
                           "status": "ERROR", "message": message, "error_code": str(error_code),
                           "error_name": error_name(str(error_code))}
    msg.update(extra)
    return msg


def make_shutdown_ack() -> dict[str, Any]:
    return {"type": SHUTDOWN, "timestamp_ms": now_ms(), "status": "OK"}


# --- message builders (runner side) -------------------------------------------------------------

def make_runner_hello(runner_version: str, heartbeat_interval_ms: int = 5000,
                      heartbeat_grace_ms: int = 2000) -> dict[str, Any]:
    return {"type": HELLO, "runner_version": runner_version,
            "heartbeat_interval_ms": heartbeat_interval_ms, "heartbeat_grace_ms": heartbeat_grace_ms}


def make_ping(request_id: str) -> dict[str, Any]:
    return {"type": PING, "request_id": request_id}


def make_call(request_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": CALL, "request_id": request_id, "data": data}
