"""Framing: round trips, limits, malformed input, stream stays in sync after errors."""

from __future__ import annotations

import io
import json
import struct

import pytest

from procvision_algorithm_sdk import protocol


def frames(*messages: dict) -> io.BytesIO:
    return io.BytesIO(b"".join(protocol.encode_frame(m) for m in messages))


def test_round_trip_preserves_unicode_and_order() -> None:
    stream = frames({"type": "ping", "request_id": "a"}, {"type": "result", "message": "缺陷 ✓"})
    assert protocol.read_frame(stream) == {"type": "ping", "request_id": "a"}
    assert protocol.read_frame(stream)["message"] == "缺陷 ✓"
    with pytest.raises(protocol.ConnectionClosed):
        protocol.read_frame(stream)


def test_header_is_big_endian_length() -> None:
    data = protocol.encode_frame({"type": "ping"})
    (length,) = struct.unpack(">I", data[:4])
    assert length == len(data) - 4
    assert json.loads(data[4:]) == {"type": "ping"}


def test_zero_length_frame_ends_the_stream() -> None:
    with pytest.raises(protocol.ConnectionClosed):
        protocol.read_frame(io.BytesIO(b"\x00\x00\x00\x00"))


def test_truncated_payload_is_connection_closed() -> None:
    data = protocol.encode_frame({"type": "ping"})[:-3]
    with pytest.raises(protocol.ConnectionClosed):
        protocol.read_frame(io.BytesIO(data))


def test_oversized_frame_is_skipped_and_stream_stays_in_sync() -> None:
    big = protocol.encode_frame({"type": "call", "pad": "x" * 5000}, max_bytes=10_000)
    stream = io.BytesIO(big + protocol.encode_frame({"type": "ping", "request_id": "after"}))
    with pytest.raises(protocol.FrameTooLarge) as info:
        protocol.read_frame(stream, max_bytes=1000)
    assert info.value.error_code == "1013"
    assert protocol.read_frame(stream, max_bytes=1000)["request_id"] == "after"


@pytest.mark.parametrize(
    "payload, needle",
    [(b"{not json", "JSON"), (b"[1, 2]", "list"), (b'{"no_type": 1}', "type"), (b"\xff\xfe", "UTF-8")],
)
def test_malformed_payloads_keep_the_stream_in_sync(payload: bytes, needle: str) -> None:
    stream = io.BytesIO(struct.pack(">I", len(payload)) + payload + protocol.encode_frame({"type": "ping"}))
    with pytest.raises(protocol.MalformedFrame) as info:
        protocol.read_frame(stream)
    assert needle in str(info.value)
    assert protocol.read_frame(stream) == {"type": "ping"}


def test_encode_refuses_frames_over_the_limit() -> None:
    with pytest.raises(protocol.FrameTooLarge):
        protocol.encode_frame({"type": "result", "data": "y" * 2000}, max_bytes=100)


def test_encode_refuses_nan() -> None:
    with pytest.raises(ValueError):
        protocol.encode_frame({"type": "result", "score": float("nan")})


def test_max_frame_bytes_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(protocol.MAX_FRAME_ENV, "4096")
    assert protocol.max_frame_bytes() == 4096
    monkeypatch.setenv(protocol.MAX_FRAME_ENV, "garbage")
    assert protocol.max_frame_bytes() == protocol.DEFAULT_MAX_FRAME_BYTES


def test_builders_carry_the_public_fields() -> None:
    hello = protocol.make_hello("1.0.0", protocol.PUBLIC_CAPABILITIES)
    assert hello["type"] == "hello" and set(protocol.PUBLIC_CAPABILITIES) <= set(hello["capabilities"])
    err = protocol.make_error("r1", "boom", "1005")
    assert err["error_code"] == "1005" and err["error_name"] == "timeout" and err["status"] == "ERROR"
    pong = protocol.make_pong("p", busy=True, busy_request_id="r9")
    assert pong["status"] == "OK" and pong["busy_request_id"] == "r9"


def test_untrusting_reader_does_not_wait_for_an_absurd_payload() -> None:
    stream = io.BytesIO(b"hello from print()\n")
    with pytest.raises(protocol.FrameTooLarge) as info:
        protocol.read_frame(stream, skip_oversized=False)
    assert info.value.looks_like_text and info.value.header == b"hell"
