"""The adapter driven with raw bytes on its stdin, frames read straight from its stdout."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.algorithms import algorithm_source
from tests.support.waiting import wait_until

from .conftest import RawAdapter, read_events, write_algo

Raw = Callable[..., RawAdapter]


def frame_bytes(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def started(raw_adapter: Raw, folder: Path, **kwargs: object) -> RawAdapter:
    adapter = raw_adapter(folder, **kwargs)
    hello = adapter.next_frame()
    assert hello["type"] == "hello", hello
    return adapter


def test_hello_first_then_calls_and_pings_by_raw_frames(raw_adapter: Raw, algo_dir: Path) -> None:
    adapter = started(raw_adapter, algo_dir)
    adapter.send({"type": "hello", "runner_version": "9.9", "heartbeat_interval_ms": 5000,
                  "heartbeat_grace_ms": 2000})
    adapter.send({"type": "ping", "request_id": "p1"})
    pong = adapter.next_frame()
    assert pong == {**pong, "type": "pong", "request_id": "p1", "status": "OK", "busy": False}
    adapter.send({"type": "call", "request_id": "c1",
                  "data": {"phase": "execute", "step_index": 3, "pid": "P1",
                           "session": {"id": "s", "context": {}}, "user_params": {}}})
    result = adapter.next_frame()
    assert result["type"] == "result" and result["request_id"] == "c1"
    assert result["data"]["phase"] == "execute" and result["data"]["step_index"] == 3


def test_oversized_frame_gets_1013_and_the_worker_keeps_serving(raw_adapter: Raw, algo_dir: Path) -> None:
    adapter = started(raw_adapter, algo_dir, env={"PROC_MAX_FRAME_BYTES": "1024"})
    big = json.dumps({"type": "call", "request_id": "big", "data": {"pad": "x" * 5000}}).encode()
    adapter.send_raw(frame_bytes(big))
    err = adapter.next_frame()
    assert err["type"] == "error" and err["error_code"] == "1013" and err["request_id"] is None
    assert "1024" in err["message"]
    adapter.send({"type": "ping", "request_id": "after"})
    assert adapter.next_frame()["request_id"] == "after"


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b"\xff\xfe", b'{"no_type": 1}'])
def test_malformed_frame_gets_1012_and_the_worker_keeps_serving(raw_adapter: Raw, algo_dir: Path,
                                                                payload: bytes) -> None:
    adapter = started(raw_adapter, algo_dir)
    adapter.send_raw(frame_bytes(payload))
    err = adapter.next_frame()
    assert err["type"] == "error" and err["error_code"] == "1012" and err["request_id"] is None
    adapter.send({"type": "call", "request_id": "ok", "data": {"phase": "info"}})
    assert adapter.next_frame()["type"] == "result"


def test_call_without_request_id_is_refused(raw_adapter: Raw, algo_dir: Path) -> None:
    adapter = started(raw_adapter, algo_dir)
    adapter.send({"type": "call", "data": {"phase": "info"}})
    err = adapter.next_frame()
    assert err["type"] == "error" and err["error_code"] == "1012"


def test_unknown_message_types_are_ignored(raw_adapter: Raw, algo_dir: Path) -> None:
    adapter = started(raw_adapter, algo_dir)
    adapter.send({"type": "telemetry", "request_id": "t1"})
    adapter.send({"type": "ping", "request_id": "p2"})
    assert adapter.next_frame()["request_id"] == "p2"  # nothing was sent for the unknown frame


def test_print_inside_execute_leaves_stdout_pure_frames(raw_adapter: Raw, algo_dir: Path) -> None:
    adapter = started(raw_adapter, algo_dir)
    for i in range(3):
        adapter.send({"type": "call", "request_id": f"c{i}",
                      "data": {"phase": "execute", "user_params": {"print": "y" * 100}}})
        assert adapter.next_frame()["request_id"] == f"c{i}"  # the reader fails on any stray byte
    adapter.send({"type": "shutdown"})
    assert adapter.next_frame()["type"] == "shutdown"
    adapter.expect_eof()
    assert adapter.wait() == 0


def test_shutdown_acks_tears_down_once_and_exits_0(raw_adapter: Raw, algo_dir: Path, events_file: Path) -> None:
    adapter = started(raw_adapter, algo_dir)
    adapter.send({"type": "shutdown"})
    ack = adapter.next_frame()
    assert ack["type"] == "shutdown" and ack["status"] == "OK"
    adapter.expect_eof()
    assert adapter.wait() == 0
    assert read_events(events_file).count("teardown") == 1


@pytest.mark.parametrize("how", ["eof", "zero_length"])
def test_end_of_input_tears_down_once_and_exits_0(raw_adapter: Raw, algo_dir: Path, events_file: Path,
                                                  how: str) -> None:
    adapter = started(raw_adapter, algo_dir)
    if how == "eof":
        adapter.close_stdin()
    else:
        adapter.send_raw(struct.pack(">I", 0))
    adapter.expect_eof()
    assert adapter.wait() == 0
    assert read_events(events_file) == ["setup", "teardown"]


def test_load_failure_is_an_error_frame_with_null_request_id_and_exit_3(raw_adapter: Raw, tmp_path: Path,
                                                                       events_file: Path) -> None:
    folder = write_algo(tmp_path / "bad", source="raise ImportError('libcuda.so.1 missing')\n")
    adapter = raw_adapter(folder)
    err = adapter.next_frame()
    assert err["type"] == "error" and err["request_id"] is None and err["error_code"] == "1000"
    assert "algo:Algo" in err["message"] and "libcuda.so.1 missing" in err["message"]
    # A call sent anyway (as callers written for the public adapter do) gets the load error too.
    adapter.send({"type": "call", "request_id": "r1", "data": {"phase": "execute"}})
    again = adapter.next_frame()
    assert again["type"] == "error" and again["request_id"] == "r1" and again["error_code"] == "1000"
    assert "libcuda.so.1 missing" in again["message"]
    adapter.send({"type": "shutdown"})
    assert adapter.next_frame()["type"] == "shutdown"
    adapter.expect_eof()
    assert adapter.wait() == 3
    wait_until(lambda: any("Traceback" in line and "libcuda" in line for line in adapter.stderr_lines),
               what="the traceback on stderr")


def test_missing_entry_exit_3_with_1004(raw_adapter: Raw, tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    adapter = raw_adapter(empty, entry=None, env={"PROC_ENTRY_POINT": "", "PROC_ALGO_ROOT": ""})
    err = adapter.next_frame()
    assert err["type"] == "error" and err["request_id"] is None and err["error_code"] == "1004"
    adapter.close_stdin()  # end of input ends the wait for late frames
    assert adapter.wait() == 3


def test_ping_while_busy_in_raw_frames(raw_adapter: Raw, algo_dir: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    adapter = started(raw_adapter, algo_dir)
    adapter.send({"type": "call", "request_id": "slow",
                  "data": {"phase": "execute", "user_params": {"wait_file": str(gate)}}})
    adapter.send({"type": "ping", "request_id": "p"})
    pong = adapter.next_frame()
    assert pong["type"] == "pong" and pong["request_id"] == "p"
    # The call may not have been picked up when the ping was read, but it was accepted first:
    assert pong["busy"] is True and pong["busy_request_id"] == "slow"
    gate.touch()
    assert adapter.next_frame()["request_id"] == "slow"


#: Starts a child process that writes to stdout, leaves a line without newline on stdout, and
#: forgets to stop a non-daemon thread it started in setup().
CHILD_AND_THREAD = algorithm_source(
    class_name="Algo", imports="import subprocess\nimport sys\nimport threading",
    methods="""
        def setup(self):
            self._stop = threading.Event()
            # A non-daemon thread the author forgot to stop in teardown().
            threading.Thread(target=self._stop.wait, name="forgotten-worker").start()
    """,
    execute="""
        subprocess.run([sys.executable, "-c", "print('child says hi')"], check=True, timeout=60)
        sys.stdout.write("partial line without newline")
        return {"status": "OK", "data": {"result_status": "OK"}}
    """)


def test_child_process_output_goes_to_stderr_and_forgotten_threads_do_not_block_exit(
        raw_adapter: Raw, tmp_path: Path) -> None:
    adapter = started(raw_adapter, write_algo(tmp_path / "child", CHILD_AND_THREAD))
    adapter.send({"type": "call", "request_id": "c", "data": {"phase": "execute"}})
    assert adapter.next_frame()["status"] == "OK"
    adapter.send({"type": "shutdown"})
    assert adapter.next_frame()["type"] == "shutdown"
    assert adapter.wait(20) == 0
    # The process has exited; its last stderr lines may still be on their way through the reader thread.
    wait_until(lambda: any("child says hi" in line for line in adapter.stderr_lines), what="child output")
    wait_until(lambda: any("forgotten-worker" in line for line in adapter.stderr_lines),
               what="the forgotten thread named on stderr")
