"""AdapterClient against scripted peers: real subprocesses that speak raw frames.

The peers are tiny scripts (not the SDK adapter) so each test can produce exactly the misbehaviour
it guards against: replies out of order, silence, early exit, garbage on stdout.
"""

from __future__ import annotations

import sys
import textwrap
import threading
from pathlib import Path

import pytest

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.client import (
    AdapterClient,
    CallTimedOut,
    HandshakeFailed,
    WorkerExited,
    WorkerProtocolViolation,
)
from tests.support.waiting import wait_until

PEER_PRELUDE = textwrap.dedent(
    """
    import json, os, struct, sys, threading, time
    out = os.fdopen(1, "wb", buffering=0)
    inp = os.fdopen(0, "rb", buffering=0)
    lock = threading.Lock()
    def send(msg):
        data = json.dumps(msg).encode()
        with lock:
            out.write(struct.pack(">I", len(data)) + data)
    def read_exact(n):
        buf = b""
        while len(buf) < n:
            chunk = inp.read(n - len(buf))
            if not chunk:
                sys.exit(0)
            buf += chunk
        return buf
    def recv():
        (n,) = struct.unpack(">I", read_exact(4))
        return json.loads(read_exact(n))
    """
)


def peer(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "peer.py"
    script.write_text(PEER_PRELUDE + textwrap.dedent(body))
    return [sys.executable, str(script)]


def start(tmp_path: Path, body: str, **kwargs: object) -> AdapterClient:
    client = AdapterClient(peer(tmp_path, body), cwd=str(tmp_path), **kwargs)  # type: ignore[arg-type]
    client.start(handshake_timeout=60)
    return client


ECHO_AFTER_DELAY = """
send({"type": "hello", "sdk_version": "t", "capabilities": ["ping", "call"]})
def answer(msg):
    time.sleep(msg["data"].get("delay", 0))
    send({"type": "result", "request_id": msg["request_id"], "status": "OK", "message": "",
          "data": {"echo": msg["data"]["n"]}})
while True:
    msg = recv()
    if msg["type"] == "call":
        threading.Thread(target=answer, args=(msg,)).start()
    elif msg["type"] == "ping":
        send({"type": "pong", "request_id": msg["request_id"], "status": "OK"})
    elif msg["type"] == "shutdown":
        send({"type": "shutdown", "status": "OK"})
        sys.exit(0)
"""


def test_concurrent_callers_get_their_own_replies(tmp_path: Path) -> None:
    client = start(tmp_path, ECHO_AFTER_DELAY)
    results: dict[int, int] = {}

    def caller(n: int) -> None:
        # Later callers answer first: replies arrive out of order and must still be routed right.
        reply = client.call({"n": n, "delay": (8 - n) * 0.02}, timeout=10)
        results[n] = reply["data"]["echo"]

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert results == {n: n for n in range(8)}
    assert client.ping(timeout=30)["type"] == "pong"
    assert client.shutdown(timeout=30) == 0


def test_call_sends_the_frame_the_caller_already_encoded(tmp_path: Path) -> None:
    client = start(tmp_path, ECHO_AFTER_DELAY)
    try:
        # The runner encodes a call once to check its size; those bytes are what the worker reads.
        # The encoded frame names n=2 while the data says n=1: the echo tells which one travelled.
        encoded = protocol.encode_frame(protocol.make_call("rid-1", {"n": 2}))
        assert client.call({"n": 1}, timeout=30, request_id="rid-1", encoded=encoded)["data"]["echo"] == 2
        assert client.call({"n": 3}, timeout=30)["data"]["echo"] == 3
        with pytest.raises(ValueError, match="request_id"):
            client.call({"n": 4}, timeout=30, encoded=encoded)
    finally:
        assert client.shutdown(timeout=30) == 0


def test_call_deadline_and_late_reply_is_dropped(tmp_path: Path) -> None:
    client = start(tmp_path, ECHO_AFTER_DELAY)
    with pytest.raises(CallTimedOut) as info:
        client.call({"n": 1, "delay": 1.0}, timeout=0.2)
    assert info.value.error_code == "1005"
    # The late reply to the timed-out call must not be handed to the next caller.
    assert client.call({"n": 2}, timeout=30)["data"]["echo"] == 2
    client.shutdown(timeout=30)


def test_exit_during_call_fails_the_caller_with_exit_code_and_stderr(tmp_path: Path) -> None:
    exits: list[int | None] = []
    client = start(tmp_path, """
        send({"type": "hello", "capabilities": []})
        recv()
        sys.stderr.write("model file corrupt\\n"); sys.stderr.flush()
        os._exit(7)
        """, on_exit=lambda c, code, reason: exits.append(code))
    with pytest.raises(WorkerExited) as info:
        client.call({}, timeout=10)
    assert info.value.exit_code == 7
    assert "exited with code 7" in info.value.message
    wait_until(lambda: exits, what="the exit callback")
    assert exits == [7]
    assert "model file corrupt" in client.stderr_tail
    assert not client.alive


def test_garbage_on_stdout_is_a_protocol_violation(tmp_path: Path) -> None:
    client = start(tmp_path, """
        send({"type": "hello", "capabilities": []})
        recv()
        out.write(b"hello from print()\\n")
        time.sleep(30)
        """)
    with pytest.raises(WorkerProtocolViolation) as info:
        client.call({}, timeout=10)
    assert info.value.error_code == "1010"
    assert client.wait(30) is not None  # the violator is killed


def test_error_before_hello_fails_the_handshake(tmp_path: Path) -> None:
    client = AdapterClient(peer(tmp_path, """
        sys.stderr.write("Traceback: ModuleNotFoundError\\n"); sys.stderr.flush()
        send({"type": "error", "request_id": None, "status": "ERROR", "message": "entry not found",
              "error_code": "1004"})
        sys.exit(3)
        """), cwd=str(tmp_path))
    with pytest.raises(HandshakeFailed) as info:
        client.start(handshake_timeout=60)
    assert info.value.error_code == "1004"
    assert "entry not found" in info.value.message


def test_silent_worker_times_out_the_handshake_and_is_killed(tmp_path: Path) -> None:
    client = AdapterClient(peer(tmp_path, "time.sleep(60)\n"), cwd=str(tmp_path))
    with pytest.raises(HandshakeFailed, match="no hello"):
        client.start(handshake_timeout=0.5)
    assert client.wait(30) is not None


def test_shutdown_escalates_to_signals_when_ignored(tmp_path: Path) -> None:
    client = start(tmp_path, """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        send({"type": "hello", "capabilities": []})
        while True:
            recv()
        """)
    code = client.shutdown(timeout=0.3, term_timeout=0.3)
    assert code == -9
