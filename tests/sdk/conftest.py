"""Fixtures for SDK runtime tests: real adapter subprocesses, real shared memory directories."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.client import AdapterClient, adapter_argv
from tests.support.algorithms import algorithm_source

#: The SDK tests' scripted double: user_params choose what execute/pre_execute do ("set"/"get" session
#: values, "read_image", "print", "sleep", "wait_file", "raise" recoverable/fatal/value/exit, "return" a
#: given result, "return_none", "nan", "object", "big"), and every hook appends a line to
#: $PV_TEST_EVENTS so tests can count calls made inside the worker.
ALGO_SOURCE = algorithm_source(
    class_name="Algo", imports="import json\nimport math\nimport os\nimport time",
    sdk_names=["FatalError", "RecoverableError", "read_image_from_shared_memory"],
    info={"name": "test-algo", "version": "1.2.3", "supported_pids": ["P1"], "steps": []},
    prelude="""
        def _event(text):
            path = os.environ.get("PV_TEST_EVENTS")
            if path:
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(text + "\\n")
    """,
    methods="""
        def setup(self):
            _event("setup")

        def teardown(self):
            _event("teardown")

        def reset(self, session):
            _event("reset " + session.id)

        def on_step_start(self, step_index, session, context):
            _event("start %s %s" % (step_index, context.get("phase")))

        def on_step_finish(self, step_index, session, result):
            _event("finish %s" % step_index)

        def _common(self, p, result):
            if p.get("print"):
                print("noise from print()", p["print"])
                os.write(1, b"noise from fd 1\\n")
            if p.get("sleep"):
                time.sleep(p["sleep"])
            if p.get("wait_file"):
                # Runs in the adapter process, which cannot import the test helpers: its own bounded poll.
                deadline = time.time() + 30
                while not os.path.exists(p["wait_file"]) and time.time() < deadline:
                    time.sleep(0.01)
            raise_kind = p.get("raise")
            if raise_kind == "recoverable":
                raise RecoverableError("camera glitch", "1002")
            if raise_kind == "fatal":
                raise FatalError("model corrupted")
            if raise_kind == "value":
                raise ValueError("bad threshold")
            if raise_kind == "exit":
                raise SystemExit(7)
            if "return" in p:
                return p["return"]
            if p.get("return_none"):
                return None
            if p.get("nan"):
                result["data"]["score"] = math.nan
            if p.get("object"):
                result["data"]["obj"] = object()
            if p.get("big"):
                result["data"]["blob"] = "x" * int(p["big"])
            return result
    """,
    pre_execute="""
        for key, value in user_params.get("set", {}).items():
            session.set(key, value)
        return self._common(user_params, {"status": "OK", "message": "pre ok", "data": {"pid": pid}})
    """,
    execute="""
        data = {"result_status": "OK", "state": {k: session.get(k) for k in user_params.get("get", [])}}
        if user_params.get("read_image"):
            img = read_image_from_shared_memory(shared_mem_id, image_meta)
            data["shape"] = list(img.shape)
            data["checksum"] = int(img.astype("uint64").sum())
            data["first_pixel"] = [int(v) for v in img[0, 0]]
        return self._common(user_params, {"status": "OK", "data": data})
    """)


def write_algo(folder: Path, source: str = ALGO_SOURCE, module: str = "algo", manifest_entry: str | None = None
               ) -> Path:
    """Write ``<module>.py`` (and a manifest.json naming it if asked) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    if manifest_entry is not None:
        manifest = {"name": "test-algo", "version": "1.2.3", "supported_pids": ["P1"], "entry_point": manifest_entry}
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def clean_env(extra: dict[str, str] | None) -> dict[str, str]:
    """The test environment without entry-point variables a developer may have set, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PROC_ENTRY_POINT", "PROC_ALGO_ROOT")}
    env.update(extra or {})
    return env


@pytest.fixture
def shm_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private directory on tmpfs for segments; subprocesses inherit it via the environment."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    path = tempfile.mkdtemp(prefix="pvtest-", dir=base)
    monkeypatch.setenv("PROC_SHM_POSIX_DIR", path)
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def events_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "events.log"
    monkeypatch.setenv("PV_TEST_EVENTS", str(path))
    return path


def read_events(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@pytest.fixture
def algo_dir(tmp_path: Path) -> Path:
    return write_algo(tmp_path / "pkg")


@pytest.fixture
def start_client() -> Iterator[Callable[..., AdapterClient]]:
    """Factory: start an AdapterClient on a folder; every client is stopped at test end."""
    clients: list[AdapterClient] = []

    def start(cwd: Path, entry: str | None = "algo:Algo", env: dict[str, str] | None = None,
              extra_args: list[str] | None = None, handshake_timeout: float = 30.0) -> AdapterClient:
        full_env = clean_env(env)
        client = AdapterClient(adapter_argv(sys.executable, entry) + list(extra_args or []), cwd=str(cwd),
                               env=full_env)
        clients.append(client)
        client.start(handshake_timeout)
        return client

    yield start
    for client in clients:
        if client.returncode is None:
            client.kill()
            client.wait(10)


class RawAdapter:
    """An adapter subprocess driven with raw bytes; frames from its stdout are queued."""

    def __init__(self, cwd: Path, entry: str | None = "algo:Algo", env: dict[str, str] | None = None) -> None:
        full_env = clean_env(env)
        self.proc = subprocess.Popen(adapter_argv(sys.executable, entry), cwd=str(cwd), env=full_env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     bufsize=0, start_new_session=True)
        self.frames: queue.Queue[Any] = queue.Queue()
        self.stderr_lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            try:
                frame = protocol.read_frame(self.proc.stdout, 1 << 30)
            except protocol.ConnectionClosed:
                self.frames.put(None)
                return
            except protocol.ProtocolError as exc:
                self.frames.put(exc)
                return
            self.frames.put(frame)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            self.stderr_lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(protocol.encode_frame(message, 1 << 30))

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def next_frame(self, timeout: float = 20.0) -> dict[str, Any]:
        try:
            item = self.frames.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no frame within {timeout}s; stderr: {self.stderr_lines[-10:]}") from None
        if item is None:
            raise AssertionError(f"adapter closed stdout; stderr: {self.stderr_lines[-10:]}")
        if isinstance(item, Exception):
            raise AssertionError(f"adapter stream corrupted: {item}; stderr: {self.stderr_lines[-10:]}")
        return dict(item)

    def expect_eof(self, timeout: float = 20.0) -> None:
        try:
            item = self.frames.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"stdout not closed within {timeout}s") from None
        assert item is None, f"expected end of stream, got {item!r}"

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def raw_adapter() -> Iterator[Callable[..., RawAdapter]]:
    adapters: list[RawAdapter] = []

    def start(cwd: Path, entry: str | None = "algo:Algo", env: dict[str, str] | None = None) -> RawAdapter:
        adapter = RawAdapter(cwd, entry, env)
        adapters.append(adapter)
        return adapter

    yield start
    for adapter in adapters:
        adapter.kill()
