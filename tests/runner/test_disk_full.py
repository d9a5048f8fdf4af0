"""A full disk under the root: every write path answers 507 / 2017 disk_full, nothing is lost, and
every state file is still valid JSON. The root sits on a real, small tmpfs that the test fills."""

from __future__ import annotations

import errno
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runner.errors import RunnerError
from runner.routing.activation import ActivationStore
from runner.service import RunnerService
from runner.store.atomic import write_json_atomic
from runner.store.layout import RootLayout
from runner.store.registry import INSTALLED, Registry
from tests.api.support import NAME, install, make_zip, start_server, wait_operation

DISK_SIZE = "400m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0755", "tmpfs",
                               str(mount_point)], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot run mount to make a small disk: {exc}")
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root / CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=60, check=False)


def _fill(folder: Path) -> Path:
    """Write a filler file until the disk holding ``folder`` is full; returns it (delete to free)."""
    filler = folder / "filler.bin"
    block = b"\0" * (1024 * 1024)
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    # The last partial block: fill the remaining bytes too.
    with open(filler, "ab", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 512)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def _state_files_valid(root: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    for path in [root / "registry.json", root / "operations.json", *sorted((root / "active").rglob("*.json"))]:
        if path.exists():
            found[str(path.relative_to(root))] = json.loads(path.read_text())
    leftovers = [p for p in root.rglob("*.tmp") if p.is_file()]
    assert not leftovers, f"temp files left behind: {leftovers}"
    return found


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    return dict(body)


def test_full_disk_gives_507_at_every_api_write_and_loses_nothing(small_disk: Path, tmp_path: Path) -> None:
    root = small_disk / "root"
    zips = tmp_path / "zips"  # on the normal disk, so they can still be read when the root's disk is full
    services: list[RunnerService] = []
    server = start_server(root, before_serve=services.append)
    try:
        with server.client() as client:
            first = install(client, make_zip(zips / "v1", "1.0.0"))
            assert first["state"] == "succeeded", first
            # The version's bytecode compiles in the background after its install: let it end before
            # the disk fills (a compile cut short by the full disk is guarded by its own test).
            assert services[0].installer.bytecode.wait(300), "the background bytecode compile did not end"
            second_zip = make_zip(zips / "v2", "1.0.1")
            filler = _fill(small_disk)
            before = _state_files_valid(root)

            with open(second_zip, "rb") as handle:
                upload = client.post("/algorithms/install",
                                     files={"file": (second_zip.name, handle, "application/zip")})
            problem = _problem(upload, 507, "2017")
            assert "no space left" in str(problem["detail"])
            assert not any((root / ".uploads").glob("*/*")), "a partial upload was left behind"

            # Not even the operations journal can be written: the install is refused up front.
            _problem(client.post("/algorithms/install", json={"path": str(second_zip)}), 507, "2017")

            activate = client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0", "pids": ["P001"]})
            _problem(activate, 507, "2017")
            assert client.get("/algorithms/active").json() == {}, "a failed activation must bind nothing"

            after = _state_files_valid(root)
            assert after["registry.json"] == before["registry.json"]
            assert {k: v for k, v in after.items() if k.startswith("active")} == \
                {k: v for k, v in before.items() if k.startswith("active")}

            # Room for the journal but not for the package: the install pipeline itself hits the wall.
            with open(filler, "r+b") as handle:
                handle.truncate(filler.stat().st_size - 2 * 1024 * 1024)
            accepted = client.post("/algorithms/install", json={"path": str(second_zip)})
            assert accepted.status_code == 202, accepted.text
            op = wait_operation(client, accepted.json()["id"])
            assert op["state"] == "failed" and op["error"]["code"] == "2017", op
            failed = client.get("/operations", params={"kind": "install", "state": "failed"}).json()
            assert [o["id"] for o in failed] == [op["id"]]
            assert not any((root / ".staging").iterdir()), "the failed install left staging files"
            _state_files_valid(root)

            filler.unlink()
            activate = client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0", "pids": ["P001"]})
            assert activate.status_code == 200, activate.text
            again = install(client, second_zip)
            assert again["state"] == "succeeded", again
            versions = {r["version"]: r["state"] for r in client.get("/algorithms").json()}
            assert versions["1.0.0"] != "invalid" and versions["1.0.1"] == "installed", versions
            _state_files_valid(root)
    finally:
        server.stop()


def test_state_writers_raise_2017_and_keep_the_old_file(small_disk: Path) -> None:
    layout = RootLayout(small_disk / "root")
    layout.ensure()
    registry = Registry(layout)
    registry.put({"name": "a", "version": "1", "state": INSTALLED})
    store = ActivationStore(layout)
    store.bind(["P1"], "a", "1")
    registry_before = layout.registry_file.read_bytes()
    active_before = layout.active_file("P1").read_bytes()
    filler = _fill(small_disk)

    with pytest.raises(RunnerError) as caught:
        registry.put({"name": "a", "version": "2", "state": INSTALLED, "smoke": {"pad": "x" * 100_000}})
    assert caught.value.code == "2017"
    with pytest.raises(RunnerError) as caught:
        store.bind(["P1", "P2"], "a", "2")
    assert caught.value.code == "2017"
    with pytest.raises(OSError):  # also an OSError, for code that handles failed writes that way
        write_json_atomic(layout.root / "other.json", {"pad": "x" * 100_000})

    assert layout.registry_file.read_bytes() == registry_before
    assert layout.active_file("P1").read_bytes() == active_before
    assert not layout.active_file("P2").exists()
    _state_files_valid(layout.root)
    filler.unlink()
    store.bind(["P1", "P2"], "a", "2")
    assert {p: b.version for p, b in store.all().items()} == {"P1": "2", "P2": "2"}
