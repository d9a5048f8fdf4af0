"""The worker adapter driven through AdapterClient (the runner's side), in real subprocesses."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.client import AdapterClient, HandshakeFailed
from procvision_algorithm_sdk.shared_memory import SHM_PREFIX, ImageSegment
from tests.support.algorithms import algorithm_source
from tests.support.waiting import wait_until

from .conftest import read_events, write_algo

Start = Callable[..., AdapterClient]


def call(client: AdapterClient, phase: str, timeout: float = 20.0, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"phase": phase, "step_index": 1, "pid": "P1",
                            "session": {"id": fields.pop("session_id", "s1"), "context": {"trace_id": "t1"}},
                            "user_params": fields.pop("params", {}), "shared_mem_id": "", "image_meta": {}}
    request_id = fields.pop("request_id", None)
    data.update(fields)
    return client.call(data, timeout, request_id=request_id)


def entry_of(client: AdapterClient) -> str:
    hello = client.hello
    assert hello is not None
    return str(hello["entry_point"])


# --- start-up --------------------------------------------------------------------------------------

def test_hello_comes_after_import_and_setup(start_client: Start, algo_dir: Path, events_file: Path) -> None:
    client = start_client(algo_dir)
    hello = client.hello
    assert hello is not None and hello["type"] == "hello"
    assert read_events(events_file) == ["setup"]  # setup ran before the hello was sent
    assert hello["sdk_version"] == "1.0.0"
    for cap in protocol.PUBLIC_CAPABILITIES + protocol.EXTENDED_CAPABILITIES:
        assert cap in hello["capabilities"]
    assert hello["entry_point"] == "algo:Algo"
    assert hello["algorithm"] == {"name": "test-algo", "version": "1.2.3"}
    info = call(client, "info")
    assert info["type"] == "result" and info["status"] == "OK"
    assert info["data"]["phase"] == "info" and info["data"]["info"]["supported_pids"] == ["P1"]


def test_entry_from_manifest_env_and_algo_root(start_client: Start, tmp_path: Path) -> None:
    with_manifest = write_algo(tmp_path / "m", module="pkg_algo", manifest_entry="pkg_algo:Algo")
    assert entry_of(start_client(with_manifest, entry=None)) == "pkg_algo:Algo"
    plain = write_algo(tmp_path / "e", module="env_algo")
    client = start_client(plain, entry=None, env={"PROC_ENTRY_POINT": "env_algo:Algo"})
    assert entry_of(client) == "env_algo:Algo"
    root = write_algo(tmp_path / "root", module="root_algo", manifest_entry="root_algo:Algo")
    empty = tmp_path / "empty"
    empty.mkdir()
    client = start_client(empty, entry=None, env={"PROC_ALGO_ROOT": str(root)})
    assert entry_of(client) == "root_algo:Algo"


BROKEN = {
    "import_error": ("import boom_dependency_that_does_not_exist\n", "algo:Algo", "1000", "boom_dependency"),
    "raises_at_import": ("raise RuntimeError('cannot load model file')\n", "algo:Algo", "1000",
                         "RuntimeError: cannot load model file"),
    "missing_module": ("", "nosuchmodule:Algo", "1004", "nosuchmodule"),
    "missing_class": ("X = 1\n", "algo:Nope", "1004", "Nope"),
    "not_an_algorithm": ("class Algo:\n    pass\n", "algo:Algo", "1004", "BaseAlgorithm"),
    "bad_entry_syntax": ("", "algo.Algo", "1004", "module.path:ClassName"),
    "constructor_raises": (algorithm_source(class_name="Algo", methods="""
                               def __init__(self):
                                   raise OSError('no camera config')
                           """), "algo:Algo", "1000", "OSError: no camera config"),
    "abstract_methods": ("from procvision_algorithm_sdk import BaseAlgorithm\n"
                         "class Algo(BaseAlgorithm):\n    pass\n", "algo:Algo", "1000", "abstract"),
    "setup_raises": (algorithm_source(class_name="Algo", methods="""
                         def setup(self):
                             raise MemoryError('weights too big')
                     """), "algo:Algo", "1000", "setup() failed"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_load_failures_fail_the_handshake_with_a_code(start_client: Start, tmp_path: Path, case: str) -> None:
    source, entry, code, needle = BROKEN[case]
    folder = write_algo(tmp_path / case, source=source)
    with pytest.raises(HandshakeFailed) as exc:
        start_client(folder, entry=entry)
    assert exc.value.error_code == code, exc.value.message
    assert needle in exc.value.message
    if entry != "algo.Algo":
        assert entry in exc.value.message


def test_no_entry_anywhere_is_1004(start_client: Start, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HandshakeFailed) as exc:
        start_client(empty, entry=None, env={"PROC_ENTRY_POINT": "", "PROC_ALGO_ROOT": ""})
    assert exc.value.error_code == "1004" and "manifest.json" in exc.value.message


# --- concurrency -----------------------------------------------------------------------------------

def test_ping_is_answered_while_a_call_runs_and_a_second_call_is_refused(start_client: Start, algo_dir: Path,
                                                                         tmp_path: Path) -> None:
    client = start_client(algo_dir)
    gate = tmp_path / "gate"
    replies: dict[str, Any] = {}
    rid = "long-call"
    runner = threading.Thread(target=lambda: replies.update(
        r=call(client, "execute", request_id=rid, params={"wait_file": str(gate)}, timeout=60)))
    runner.start()

    def busy_pong() -> bool:
        pong = client.ping(5)
        replies["pong"] = pong
        return bool(pong["busy"])

    wait_until(busy_pong, what="a busy pong")
    assert replies["pong"]["busy_request_id"] == rid and replies["pong"]["status"] == "OK"
    refused = call(client, "execute")
    assert refused["type"] == "error" and refused["error_code"] == "1015"
    assert rid in refused["message"]
    gate.touch()
    runner.join(60)
    assert replies["r"]["type"] == "result" and replies["r"]["status"] == "OK"
    idle = client.ping(5)
    assert idle["busy"] is False and idle["busy_request_id"] is None


def test_print_and_fd1_writes_do_not_corrupt_frames(start_client: Start, algo_dir: Path) -> None:
    client = start_client(algo_dir)
    for _ in range(3):
        reply = call(client, "execute", params={"print": "x" * 200})
        assert reply["type"] == "result" and reply["status"] == "OK"
    wait_until(lambda: any("noise from fd 1" in line for line in client.stderr_tail), what="noise on stderr")
    assert any("noise from print() xxx" in line for line in client.stderr_tail)
    assert client.alive


# --- sessions --------------------------------------------------------------------------------------

def test_session_state_from_pre_is_visible_in_execute(start_client: Start, algo_dir: Path,
                                                      events_file: Path) -> None:
    client = start_client(algo_dir)
    pre = call(client, "pre", params={"set": {"rects": [[1, 2, 3, 4]]}})
    assert pre["status"] == "OK" and pre["message"] == "pre ok"
    assert pre["data"] == {"phase": "pre", "step_index": 1, "pid": "P1"}
    out = call(client, "execute", params={"get": ["rects"]})
    assert out["data"]["state"] == {"rects": [[1, 2, 3, 4]]}
    other = call(client, "execute", session_id="s2", params={"get": ["rects"]})
    assert other["data"]["state"] == {"rects": None}
    ended = call(client, "execute", params={"get": ["rects"]}, end_session=True)
    assert ended["data"]["state"] == {"rects": [[1, 2, 3, 4]]}
    assert "reset s1" in read_events(events_file)
    after = call(client, "execute", params={"get": ["rects"]})
    assert after["data"]["state"] == {"rects": None}


def test_sessions_are_bounded_lru(start_client: Start, algo_dir: Path, events_file: Path) -> None:
    client = start_client(algo_dir, extra_args=["--session-capacity", "2"])
    for sid in ("a", "b"):
        call(client, "pre", session_id=sid, params={"set": {"who": sid}})
    call(client, "execute", session_id="a", params={"get": ["who"]})  # a is now most recent
    call(client, "pre", session_id="c", params={"set": {"who": "c"}})  # evicts b
    assert [e for e in read_events(events_file) if e.startswith("reset")] == ["reset b"]
    assert call(client, "execute", session_id="a", params={"get": ["who"]})["data"]["state"] == {"who": "a"}
    assert call(client, "execute", session_id="b", params={"get": ["who"]})["data"]["state"] == {"who": None}


def test_calls_without_session_id_do_not_share_state(start_client: Start, algo_dir: Path) -> None:
    client = start_client(algo_dir)
    call(client, "pre", session_id="", params={"set": {"k": 1}})
    assert call(client, "execute", session_id="", params={"get": ["k"]})["data"]["state"] == {"k": None}


def test_hooks_wrap_pre_and_execute(start_client: Start, algo_dir: Path, events_file: Path) -> None:
    client = start_client(algo_dir)
    call(client, "pre")
    call(client, "execute", step_index=2)
    assert read_events(events_file)[1:] == ["start 1 pre", "finish 1", "start 2 execute", "finish 2"]


#: Step hooks that raise: a plain exception on step 1's start, a RecoverableError on step 2's finish.
HOOK_FAILS = algorithm_source(class_name="Algo", sdk_names=["RecoverableError"], methods="""
    def on_step_start(self, step_index, session, context):
        if step_index == 1:
            raise KeyError("start hook broke")

    def on_step_finish(self, step_index, session, result):
        if step_index == 2:
            raise RecoverableError("finish hook broke", "1003")
""")


def test_hook_exceptions_are_reported_as_errors(start_client: Start, tmp_path: Path) -> None:
    client = start_client(write_algo(tmp_path / "hooks", HOOK_FAILS))
    first = call(client, "execute", step_index=1)
    assert first["type"] == "error" and first["error_code"] == "1009"
    assert "on_step_start()" in first["message"] and "KeyError" in first["message"]
    second = call(client, "execute", step_index=2)
    assert second["type"] == "error" and second["error_code"] == "1003" and second["retryable"] is True
    assert call(client, "execute", step_index=3)["status"] == "OK"
    wait_until(lambda: any("on_step_start() raised KeyError" in line for line in client.stderr_tail),
               what="hook failure on stderr")


# --- results and errors ----------------------------------------------------------------------------

def test_error_code_returned_by_the_algorithm_is_forwarded(start_client: Start, algo_dir: Path) -> None:
    client = start_client(algo_dir)
    ret = {"status": "ERROR", "message": "pid not supported", "error_code": "1001", "data": {"hint": 1}}
    reply = call(client, "execute", params={"return": ret})
    assert reply["type"] == "result" and reply["status"] == "ERROR"
    assert reply["message"] == "pid not supported"
    assert reply["error_code"] == "1001" and reply["error_name"] == "invalid_pid"
    assert reply["data"] == {"phase": "execute", "step_index": 1, "hint": 1}


@pytest.mark.parametrize("kind,code,fatal,retryable,cls", [
    ("recoverable", "1002", False, True, "RecoverableError"),
    ("fatal", "1000", True, False, "FatalError"),
])
def test_raised_sdk_errors_carry_code_and_flags(start_client: Start, algo_dir: Path, kind: str, code: str,
                                               fatal: bool, retryable: bool, cls: str) -> None:
    client = start_client(algo_dir)
    reply = call(client, "execute", params={"raise": kind})
    assert reply["type"] == "error" and reply["status"] == "ERROR"
    assert reply["error_code"] == code and reply["fatal"] is fatal and reply["retryable"] is retryable
    assert reply["error_class"] == cls
    wait_until(lambda: any("Traceback" in line for line in client.stderr_tail), what="traceback on stderr")


def test_other_exceptions_are_1009_and_the_worker_keeps_serving(start_client: Start, algo_dir: Path) -> None:
    client = start_client(algo_dir)
    reply = call(client, "pre", params={"raise": "value"})
    assert reply["error_code"] == "1009" and "ValueError: bad threshold" in reply["message"]
    exited = call(client, "execute", params={"raise": "exit"})
    assert exited["error_code"] == "1009" and "SystemExit" in exited["message"]
    assert call(client, "execute")["status"] == "OK"


@pytest.mark.parametrize("phase", ["verify", None, ""])
def test_unknown_phase_is_1003_and_nothing_runs(start_client: Start, algo_dir: Path, events_file: Path,
                                                phase: Any) -> None:
    client = start_client(algo_dir)
    reply = client.call({"phase": phase, "step_index": 1} if phase is not None else {"step_index": 1}, 20)
    assert reply["type"] == "error" and reply["error_code"] == "1003"
    assert read_events(events_file) == ["setup"]


def test_bad_field_types_are_1003(start_client: Start, algo_dir: Path) -> None:
    client = start_client(algo_dir)
    reply = call(client, "execute", step_index="one")
    assert reply["error_code"] == "1003" and "step_index" in reply["message"]


@pytest.mark.parametrize("params,needle", [
    ({"return_none": True}, "NoneType"),
    ({"return": [1, 2]}, "list"),
    ({"return": {"status": "OK", "data": [1]}}, "data"),
    ({"nan": True}, "NaN"),
    ({"object": True}, "JSON"),
    ({"big": 300_000}, "bytes"),
])
def test_invalid_results_are_1014(start_client: Start, algo_dir: Path, params: dict[str, Any], needle: str) -> None:
    client = start_client(algo_dir, env={"PROC_MAX_FRAME_BYTES": "200000"})
    reply = call(client, "execute", params=params)
    assert reply["type"] == "error" and reply["error_code"] == "1014", reply
    assert needle in reply["message"]
    assert call(client, "execute")["status"] == "OK"


# --- stopping --------------------------------------------------------------------------------------

def test_shutdown_tears_down_exactly_once(start_client: Start, algo_dir: Path, events_file: Path) -> None:
    client = start_client(algo_dir)
    call(client, "pre", session_id="open")
    assert client.shutdown(timeout=20) == 0
    events = read_events(events_file)
    assert events.count("teardown") == 1
    assert "reset open" in events and events.index("reset open") < events.index("teardown")


def test_sigterm_tears_down_once_and_exits(start_client: Start, algo_dir: Path, events_file: Path) -> None:
    import signal

    client = start_client(algo_dir)
    assert client.pid is not None
    os.kill(client.pid, signal.SIGTERM)
    assert client.wait(20) == 0
    assert read_events(events_file).count("teardown") == 1


# --- images ----------------------------------------------------------------------------------------

def image(h: int = 12, w: int = 10) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("color_space", ["RGB", "BGR"])
def test_execute_reads_a_shared_memory_image(start_client: Start, algo_dir: Path, shm_dir: Path,
                                             color_space: str) -> None:
    client = start_client(algo_dir)
    rgb = image()
    stored = rgb if color_space == "RGB" else np.ascontiguousarray(rgb[:, :, ::-1])
    with ImageSegment.create_array(stored) as seg:
        reply = call(client, "execute", params={"read_image": True}, shared_mem_id=seg.id,
                     image_meta=seg.image_meta(color_space))
        assert reply["status"] == "OK", reply
        assert reply["data"]["shape"] == [12, 10, 3]
        assert reply["data"]["checksum"] == int(rgb.astype(np.uint64).sum())
        assert reply["data"]["first_pixel"] == [int(v) for v in rgb[0, 0]]
        assert (shm_dir / seg.id).exists()  # the worker's reading did not remove it
    assert os.listdir(shm_dir) == []


def test_execute_with_a_missing_segment_gets_1007(start_client: Start, algo_dir: Path, shm_dir: Path) -> None:
    client = start_client(algo_dir)
    reply = call(client, "execute", params={"read_image": True}, shared_mem_id=SHM_PREFIX + "f" * 32,
                 image_meta={"width": 10, "height": 12, "color_space": "RGB"})
    assert reply["type"] == "error" and reply["error_code"] == "1007"
    assert reply["error_name"] == "shared_memory_not_found"


def test_hello_is_valid_json_with_public_fields(start_client: Start, algo_dir: Path) -> None:
    hello = start_client(algo_dir).hello
    assert hello is not None
    json.dumps(hello)
    assert isinstance(hello["timestamp_ms"], int) and isinstance(hello["capabilities"], list)


def test_sigterm_during_a_stuck_call_still_tears_down_once(start_client: Start, algo_dir: Path, events_file: Path,
                                                          tmp_path: Path) -> None:
    import signal

    client = start_client(algo_dir, extra_args=["--shutdown-grace-s", "0.2"])
    future = client.submit(protocol.make_call("stuck", {"phase": "execute",
                                                        "user_params": {"wait_file": str(tmp_path / "never")}}))
    wait_until(lambda: client.ping(5)["busy"] is True, what="the call to start")
    assert client.pid is not None
    os.kill(client.pid, signal.SIGTERM)
    assert client.wait(20) == 0
    assert read_events(events_file).count("teardown") == 1
    assert not future.done() or future.exception() is not None  # the stuck call never got a result


def test_shutdown_waits_for_the_running_call(start_client: Start, algo_dir: Path, events_file: Path,
                                             tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    client = start_client(algo_dir)
    future = client.submit(protocol.make_call("finishing", {"phase": "execute",
                                                            "user_params": {"wait_file": str(gate)}}))
    wait_until(lambda: client.ping(5)["busy"] is True, what="the call to start")
    client.send({"type": "shutdown"})
    gate.touch()
    assert future.result(20)["status"] == "OK"
    assert client.wait(20) == 0
    events = read_events(events_file)
    assert events.count("teardown") == 1 and events.index("finish 1") < events.index("teardown")


def test_numeric_session_ids_are_kept_as_strings(start_client: Start, algo_dir: Path) -> None:
    client = start_client(algo_dir)
    call(client, "pre", session_id=7, params={"set": {"k": "v"}})
    assert call(client, "execute", session_id="7", params={"get": ["k"]})["data"]["state"] == {"k": "v"}
