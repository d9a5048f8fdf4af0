"""A real daemon for API and CLI tests: uvicorn on 127.0.0.1 (free port) in a thread, a real root.

The packages are the standard test algorithm (tests/support/packages.py ``standard_algorithm``),
which behaves as its ``user_params`` say, so tests can provoke every outcome through the real
worker: ``sleep_s`` (slow call -> timeouts), ``crash`` (the process exits -> 502), ``say`` (a line
on stderr -> the worker log), ``fail`` (status ERROR with error_code 1003).
"""

from __future__ import annotations

import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from runner.config import Settings
from runner.daemon import Daemon
from runner.service import RunnerService
from tests.support.packages import algorithm_files, build_package, manifest_for
from tests.support.waiting import wait_until

NAME = "api_algo"
PIDS = ("P001", "P002")


def make_zip(dest: Path, version: str = "1.0.0", name: str = NAME, pids: tuple[str, ...] = PIDS) -> Path:
    """A real package zip of the test algorithm (SDK wheel + cached numpy wheel)."""
    manifest = manifest_for(name=name, version=version, pids=pids)
    return build_package(dest, manifest=manifest, files=algorithm_files(manifest))


def png_bytes(value: int = 100, size: tuple[int, int] = (48, 64)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size[0], size[1], 3), value, dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class RunningServer:
    """A daemon serving in a thread of this test process."""

    daemon: Daemon
    thread: threading.Thread
    settings: Settings
    errors: list[BaseException] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.daemon.url is not None
        return self.daemon.url

    @property
    def token(self) -> str | None:
        path = self.settings.layout.token_file
        return path.read_text().strip() if path.exists() else None

    def client(self, token: str | None = "auto", timeout_s: float = 120.0) -> httpx.Client:
        value = self.token if token == "auto" else token
        headers = {"Authorization": f"Bearer {value}"} if value else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def stop(self, timeout_s: float = 120.0) -> None:
        self.daemon.request_stop()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "daemon thread did not stop"


def start_server(root: Path, before_serve: Callable[[RunnerService], None] | None = None,
                 **overrides: Any) -> RunningServer:
    """Start a daemon on ``root`` (port 0 = a free port); waits until it listens. ``before_serve``
    gets the service before the API serves (a test that watches the workers keeps it)."""
    # Deadlines that only bound a hang: on a busy machine a worker can take many seconds to start or
    # to answer a ping, which the defaults (sized for a station) would treat as a failure.
    values: dict[str, Any] = {"root": root, "port": 0, "host": "127.0.0.1", "watch_drop_folder": False,
                              "handshake_timeout_ms": 120000, "heartbeat_grace_ms": 10000}
    values.update(overrides)
    settings = Settings.load(None, **values)
    daemon = Daemon(settings, before_serve=before_serve)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            daemon.run()
        except BaseException as exc:  # noqa: BLE001 - reported to the test through `errors`
            errors.append(exc)

    thread = threading.Thread(target=run, name="test-daemon", daemon=True)
    thread.start()
    wait_until(lambda: daemon.listening.is_set() or not thread.is_alive(), 120.0, "the daemon to listen")
    if errors or not daemon.listening.is_set():
        raise AssertionError(f"daemon failed to start: {errors!r}")
    return RunningServer(daemon, thread, settings, errors)


def install(client: httpx.Client, zip_path: Path, **headers: str) -> dict[str, Any]:
    """Upload and wait for the install operation to end; returns the final operation."""
    with open(zip_path, "rb") as handle:
        response = client.post("/algorithms/install", files={"file": (zip_path.name, handle, "application/zip")},
                               headers=headers)
    assert response.status_code in (200, 202), response.text
    op_id = response.json()["id"]
    return wait_operation(client, op_id)


def install_and_activate(client: httpx.Client, zip_path: Path, pids: tuple[str, ...] = ("P001",),
                         name: str = NAME, version: str = "1.0.0") -> None:
    """Install the package and bind ``pids`` to it (what a module fixture serving one version needs)."""
    op = install(client, zip_path)
    assert op["state"] == "succeeded", op
    response = client.post("/algorithms/activate", json={"name": name, "version": version, "pids": list(pids)})
    assert response.status_code == 200, response.text


def npy_bytes(arr: np.ndarray) -> bytes:
    """``arr`` as a ``.npy`` file's bytes (an upload body)."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def wait_operation(client: httpx.Client, op_id: str, timeout_s: float = 240.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        op = client.get(f"/operations/{op_id}").json()
        return op if op["state"] in ("succeeded", "failed") else None

    return dict(wait_until(done, timeout_s, f"operation {op_id}"))


URL_LINE = re.compile(r"serving (http://\S+)")


class ServeProcess:
    """A real `procvision-runner serve` subprocess whose output lines are collected by reader threads."""

    def __init__(self, root: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner.cli.main", "serve", "--root", str(root), "--no-watch", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env if env is not None else dict(os.environ))
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line.rstrip("\n"))

    def url(self, timeout_s: float = 120.0) -> str:
        """The URL the daemon printed once it was listening."""
        def next_url() -> str | None:
            try:
                match = URL_LINE.search(self.lines.get_nowait())
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(f"serve exited ({self.proc.returncode}) before it reported its URL; "
                                         f"stderr: {self.stderr[-20:]}") from None
                return None
            return match.group(1) if match else None

        return wait_until(next_url, timeout_s, lambda: f"serve to report its URL; stderr: {self.stderr[-20:]}")

    def wait(self, timeout_s: float = 90.0) -> int:
        """Wait for the daemon to exit on its own; kill it and fail if it does not."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"serve did not exit; stderr: {self.stderr[-30:]}") from None

    def stop(self, timeout_s: float = 90.0) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
