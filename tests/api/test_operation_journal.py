"""Install operations survive the daemon: a kill -9 mid-install leaves a failed "interrupted by restart"
operation behind (not a 404), failed installs stay listed, and the journal stays bounded and valid."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runner.api.operations import OperationManager
from runner.store.journal import OperationsJournal
from tests.api.support import ServeProcess
from tests.support.packages import algorithm_files, build_package, manifest_for
from tests.support.processes import descendants
from tests.support.waiting import wait_until


def _client(root: Path, url: str) -> httpx.Client:
    token = (root / ".token").read_text().strip()
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def _cli(root: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner.cli.main", *args, "--root", str(root), "--url", url],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for proc in started:
        proc.kill()


def _hanging_package(dest: Path) -> Path:
    """A package whose algorithm takes minutes to import: its install sits in the smoke test."""
    manifest = manifest_for(name="slow_algo", version="1.0.0")
    files = algorithm_files(manifest)
    files["algo/main.py"] = "import time\ntime.sleep(300)\n" + files["algo/main.py"]
    return build_package(dest, manifest=manifest, files=files)


def _journal_stage(path: Path, op_id: str) -> str | None:
    """The stage the journal file records for ``op_id`` (None: not there yet)."""
    try:
        operations = json.loads(path.read_text())["operations"]
    except (OSError, ValueError, KeyError):
        return None  # not written yet (it is replaced atomically, so never half-written)
    return next((o.get("stage") for o in operations if o.get("id") == op_id), None)


def test_install_killed_mid_way_reads_failed_after_restart(tmp_path: Path, serve: list[ServeProcess]) -> None:
    root = tmp_path / "root"
    zip_path = _hanging_package(tmp_path / "pkg")
    first = ServeProcess(root, "--port", "0")
    serve.append(first)
    url = first.url()
    with _client(root, url) as client, open(zip_path, "rb") as handle:
        response = client.post("/algorithms/install", headers={"Idempotency-Key": "slow-1"},
                               files={"file": (zip_path.name, handle, "application/zip")})
        assert response.status_code == 202, response.text
        op_id = response.json()["id"]
        wait_until(lambda: client.get(f"/operations/{op_id}").json()["stage"] == "smoke test", 240,
                 "the install to reach its smoke test")
    # The journal is written just after the stage changes in memory: on a busy machine the API can say
    # "smoke test" before the file does, and the kill must come after the file says it.
    wait_until(lambda: _journal_stage(root / "operations.json", op_id) == "smoke test", 60,
               "the journal to record the smoke test stage")
    orphans = descendants(first.proc.pid)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(30)
    for pid in orphans:
        with contextlib.suppress(ProcessLookupError):  # already gone with its parent
            os.kill(pid, signal.SIGKILL)

    second = ServeProcess(root, "--port", "0")
    serve.append(second)
    url = second.url()
    with _client(root, url) as client:
        op = client.get(f"/operations/{op_id}").json()
        assert op["state"] == "failed", op
        assert op["error"]["detail"].startswith("interrupted by restart"), op["error"]
        assert op["error"]["details"]["stage"] == "smoke test"
        # The idempotency key still names that operation: a retry with it is not a second install.
        with open(zip_path, "rb") as handle:
            again = client.post("/algorithms/install", headers={"Idempotency-Key": "slow-1"},
                                files={"file": (zip_path.name, handle, "application/zip")})
        assert again.status_code == 200 and again.json()["id"] == op_id, again.text
        failed = client.get("/operations", params={"kind": "install", "state": "failed"}).json()
        assert [o["id"] for o in failed] == [op_id]
    shown = _cli(root, url, "list", "--failed")
    assert shown.returncode == 0, shown.stderr
    assert op_id in shown.stdout and "interrupted by restart" in shown.stdout and zip_path.name in shown.stdout
    journal = json.loads((root / "operations.json").read_text())
    assert [o["state"] for o in journal["operations"]] == ["failed"]
    assert second.stop() == 0


def test_failed_install_without_a_manifest_is_listed_across_restarts(tmp_path: Path,
                                                                       serve: list[ServeProcess]) -> None:
    root = tmp_path / "root"
    first = ServeProcess(root, "--port", "0")
    serve.append(first)
    url = first.url()
    with _client(root, url) as client:
        response = client.post("/algorithms/install", content=b"this is not a zip",
                               headers={"content-type": "application/zip", "x-filename": "broken.zip"})
        op_id = response.json()["id"]
        wait_until(lambda: client.get(f"/operations/{op_id}").json()["state"] == "failed", 120, "the install to fail")
    assert first.stop() == 0
    second = ServeProcess(root, "--port", "0")
    serve.append(second)
    url = second.url()
    shown = _cli(root, url, "list", "--failed")
    assert shown.returncode == 0, shown.stderr
    assert op_id in shown.stdout and "broken.zip" in shown.stdout and "2001" in shown.stdout
    assert second.stop() == 0


def test_journal_is_bounded_and_marks_unfinished_operations(tmp_path: Path) -> None:
    path = tmp_path / "operations.json"
    journal = OperationsJournal(path, keep=5)
    manager = OperationManager(journal=journal)
    release = threading.Event()
    for _ in range(8):
        manager.submit("install", lambda progress: {"ok": True})
    blocked, _ = manager.submit("install", lambda progress: {"ok": release.wait(60)})
    wait_until(lambda: manager.get(blocked.id).state == "running", 30, "the last operation to run")
    # The journal is written just after the state changes in memory: wait for the file to say so too.
    wait_until(lambda: json.loads(path.read_text())["operations"][-1]["state"] == "running", 30,
             "the journal to record the running operation")
    stored = json.loads(path.read_text())["operations"]
    assert len(stored) == 5 and stored[-1]["id"] == blocked.id and stored[-1]["state"] == "running"

    # A second manager on the same file is what a restarted daemon sees.
    after = OperationManager(journal=OperationsJournal(path, keep=5))
    op = after.get(blocked.id)
    assert op.state == "failed" and op.error is not None
    assert op.error["detail"].startswith("interrupted by restart")
    assert op.done.is_set()
    release.set()
    assert manager.close(30) and after.close(30)


def test_damaged_journal_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "operations.json"
    path.write_text("{half a file")
    manager = OperationManager(journal=OperationsJournal(path))
    assert manager.list() == []
    assert (tmp_path / "operations.json.damaged").read_text() == "{half a file"
    assert json.loads(path.read_text())["operations"] == []
    assert manager.close(30)
