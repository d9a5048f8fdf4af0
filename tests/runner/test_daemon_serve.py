"""`procvision-runner serve` as a real subprocess: SIGTERM drains and leaves no worker process and no
shared-memory segment; a second daemon on the same root refuses (2012 -> exit 22); a restart brings
the active versions back without a new activation."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runner.cli import exitcodes
from tests.api.support import NAME, ServeProcess, install, make_zip, png_bytes
from tests.support.waiting import wait_until


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    # A zombie has exited; only its parent has not reaped it yet.
    return not (stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"))


def _segments(shm: Path) -> set[str]:
    return {p.name for p in shm.iterdir() if p.name.startswith("pvshm-")} if shm.is_dir() else set()


@pytest.fixture
def private_shm() -> Iterator[Path]:
    """A shm folder of this test's own, so segments of tests running in parallel cannot mask a leak."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    folder = Path(tempfile.mkdtemp(prefix="pv-daemon-test-", dir=base))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_sigterm_drains_and_leaves_nothing_behind(tmp_path: Path, private_shm: Path) -> None:
    root = tmp_path / "root"
    # Unboxed: PROC_SHM_POSIX_DIR is the segment folder of unboxed workers (boxed ones use their own).
    env = dict(os.environ, PROC_SHM_POSIX_DIR=str(private_shm), PROCVISION_RUNNER_SANDBOX="off")
    segments_before = _segments(private_shm)
    zip_path = make_zip(tmp_path / "pkgs")
    daemon = ServeProcess(root, "--port", "0", env=env)
    try:
        url = daemon.url()
        token = (root / ".token").read_text().strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
            assert install(client, zip_path)["state"] == "succeeded"
            activate = client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0", "pids": ["P001"]})
            assert activate.status_code == 200, activate.text
            workers = client.get(f"/algorithms/{NAME}/1.0.0").json()["workers"]["workers"]
            pids = [w["pid"] for w in workers if w.get("pid")]
            assert pids and all(_alive(p) for p in pids)

            # A second daemon on the same root refuses with 2012.
            second = subprocess.run([sys.executable, "-m", "runner.cli.main", "serve", "--root", str(root),
                                     "--port", "0", "--no-watch"], capture_output=True, text=True, timeout=120,
                                    env=env)
            assert second.returncode == exitcodes.exit_code_for("2012") == 22
            assert "2012" in second.stderr and "already" in second.stderr

            # SIGTERM while a call is in flight: the call still gets its answer.
            answers: list[httpx.Response] = []

            def slow_call() -> None:
                answers.append(client.post("/execute", data={"pid": "P001", "user_params": '{"sleep_s": 1.5}'},
                                           files={"image": ("a.png", png_bytes(), "image/png")}))

            caller = threading.Thread(target=slow_call)
            caller.start()
            wait_until(lambda: client.get(f"/algorithms/{NAME}/1.0.0").json()["workers"]["in_flight"] > 0, 30,
                     "the call to be in flight")
            # The in-flight image lives in the private folder: proof the daemon and its workers use it.
            # The pool counts the call in flight before its worker writes the image (a busy machine
            # shows the gap): wait for the segment, which stays while the worker runs the call.
            wait_until(lambda: _segments(private_shm) - segments_before, 30,
                       "the in-flight call's image segment in the private folder")
            daemon.proc.send_signal(signal.SIGTERM)
            caller.join(60)
        assert answers and answers[0].status_code == 200, answers and answers[0].text
        assert answers[0].json()["status"] == "OK", answers[0].text
        assert daemon.stop() == 0, daemon.stderr[-30:]
        wait_until(lambda: not any(_alive(p) for p in pids), what="the worker processes to be gone")
        # Segments of calls other tests run in parallel come and go within milliseconds; a leak stays.
        wait_until(lambda: not (_segments(private_shm) - segments_before),
                   what="no shared-memory segment left behind")
        assert not (root / ".daemon.lock.pid").exists()
    finally:
        daemon.stop()

    # A restart resumes the active version without a new activation.
    again = ServeProcess(root, "--port", "0", env=env)
    try:
        url = again.url()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
            assert client.get("/readyz").json() == {"ready": True, "reasons": []}
            response = client.post("/execute", data={"pid": "P001"},
                                   files={"image": ("a.png", png_bytes(), "image/png")})
            assert response.status_code == 200 and response.json()["status"] == "OK", response.text
    finally:
        assert again.stop() == 0
