"""Text that a phase-era (public 0.0.7) algorithm prints lands in the frame stream; the runner's reader
must call it stdout contamination (1010), whatever its length or script, not an oversized frame."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.client import AdapterClient, WorkerFailure


@pytest.mark.parametrize("printed", ["hello from print()\n", "ok\n", "x\n", "\n", "{}\n", "检测完成\n"])
def test_printed_text_before_a_frame_is_recognised(printed: str) -> None:
    stream = io.BytesIO(printed.encode("utf-8") + protocol.encode_frame({"type": "result"}))
    with pytest.raises(protocol.FrameTooLarge) as caught:
        protocol.read_frame(stream, skip_oversized=False)
    assert caught.value.looks_like_text, caught.value.header


def test_a_genuinely_oversized_frame_is_not_text() -> None:
    header = protocol.HEADER.pack(32 * 1024 * 1024)
    with pytest.raises(protocol.FrameTooLarge) as caught:
        protocol.read_frame(io.BytesIO(header + b"{}"), skip_oversized=False)
    assert not caught.value.looks_like_text


#: A peer that behaves like a 0.0.7 worker whose algorithm prints at import: hello, then text.
_PRINTS_AFTER_HELLO = r"""
import json, struct, sys, time
hello = json.dumps({"type": "hello", "sdk_version": "0.0.7", "timestamp_ms": 0,
                    "capabilities": ["ping", "call", "shutdown", "shared_memory:v1", "info"]}).encode()
sys.stdout.buffer.write(struct.pack(">I", len(hello)) + hello + b"loading model weights\n")
sys.stdout.buffer.flush()
time.sleep(30)
"""


def test_text_right_after_hello_is_reported_as_contamination_not_as_a_closed_pipe(tmp_path: Path) -> None:
    """The reader may see the text (and kill the worker) while start() is still sending the runner's
    hello: whichever wins, the failure the caller gets names stdout contamination (1010)."""
    for _ in range(15):
        client = AdapterClient([sys.executable, "-c", _PRINTS_AFTER_HELLO], str(tmp_path), dict(os.environ))
        try:
            try:
                client.start(20.0, protocol.make_runner_hello("test"))
                with pytest.raises(WorkerFailure) as caught:
                    client.call({"phase": "info"}, 20.0)
            except WorkerFailure as exc:
                failure = exc
            else:
                failure = caught.value
            assert failure.error_code == "1010", failure.message
            assert "stdout" in failure.message
        finally:
            client.kill()
            client.wait(5.0)
