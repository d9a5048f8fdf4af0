"""Finding 9, daemon side: after ``serve`` is killed with SIGKILL its workers' process trees keep
running (nobody is left to end them); the next ``serve`` on the root ends them, from the record
under ``<root>/.workers/``, before it starts workers of its own. A SIGTERM'd daemon leaves nothing."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.api.support import NAME, ServeProcess, install
from tests.runner.supervision_support import pid_alive
from tests.support.algorithms import algorithm_info, child_spawner, recorded_children
from tests.support.packages import build_package, manifest_for
from tests.support.waiting import wait_until

#: The algorithm reports host pids into a file of the test folder, which a boxed worker can neither
#: see nor write: these daemons run workers unboxed (the box is guarded in test_worker_sandbox.py).
UNBOXED_ENV = {**os.environ, "PROCVISION_RUNNER_SANDBOX": "off"}


def _alive_children(rows: list[tuple[int, int, int]], escaped_too: bool = True) -> list[int]:
    """Live children of the recorded workers; a child that left the worker's process group by
    setsid (``escaped_too``) is only caught where the worker has a cgroup."""
    return [pid for row in rows for pid in (row[1:] if escaped_too else row[1:2]) if pid_alive(pid)]


def _client(url: str, root: Path) -> httpx.Client:
    token = (root / ".token").read_text().strip()
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def test_next_start_ends_what_a_killed_daemon_left(tmp_path: Path) -> None:
    root = tmp_path / "root"
    record = tmp_path / "children.txt"
    manifest = manifest_for(name=NAME, version="1.0.0", pids=("P001",))
    source = child_spawner(record, algorithm_info(NAME, pids=("P001",)))
    zip_path = build_package(tmp_path / "pkgs", manifest=manifest,
                             files={"algo/__init__.py": "", "algo/main.py": source})
    first = ServeProcess(root, "--port", "0", env=UNBOXED_ENV)
    second: ServeProcess | None = None
    try:
        with _client(first.url(), root) as client:
            assert install(client, zip_path)["state"] == "succeeded"
            smoke_rows = recorded_children(record)
            # The install's smoke test ended its worker's children already.
            assert smoke_rows and not _alive_children(smoke_rows, escaped_too=False)
            response = client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0", "pids": ["P001"]})
            assert response.status_code == 200, response.text
            status = client.get(f"/algorithms/{NAME}/1.0.0").json()["workers"]
            assert status["memory_limit"]["mechanism"] and status["memory_limit"]["reason"]
            cgroups = status["memory_limit"]["mechanism"] in ("cgroup-v1", "cgroup-v2")
        served = recorded_children(record)[len(smoke_rows):]
        assert served and len(_alive_children(served)) == 2 * len(served)
        assert [p for p in (root / ".workers").iterdir()], "the daemon records its worker groups"

        first.proc.kill()  # SIGKILL: no chance to stop anything
        first.proc.wait(30)
        # Nothing ended the children: this is what the next start must clean up.
        assert _alive_children(served)

        second = ServeProcess(root, "--port", "0", env=UNBOXED_ENV)
        with _client(second.url(), root) as client:
            assert client.get("/readyz").json()["ready"] is True
        wait_until(lambda: not _alive_children(served, cgroups), 30, "the killed daemon's worker children to be ended")
        assert not [pid for pid, _, _ in served if pid_alive(pid)]
        resumed = recorded_children(record)[len(smoke_rows) + len(served):]
        assert resumed and len(_alive_children(resumed)) == 2 * len(resumed)

        # SIGTERM: the daemon stops its workers, and with them everything they started.
        assert second.stop() == 0, second.stderr[-30:]
        second = None
        wait_until(lambda: not _alive_children(resumed, cgroups), 30,
                 "the workers' children to be gone after SIGTERM")
        assert not list((root / ".workers").iterdir())
    finally:
        first.kill()
        if second is not None:
            second.kill()
        for pid in _alive_children(recorded_children(record)):
            if b"pv-test-child" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, 9)
