"""`quickstart` (what `./dev serve` runs): builds the example algorithm's package with the SDK
packager, installs and activates it, serves; a second run finds everything in place."""

from __future__ import annotations

import io
import json
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from runner.cli.quickstart import EXAMPLE, Quickstart
from runner.config import Settings
from runner.daemon import Daemon
from runner.service import RunnerService
from tests.api.support import make_zip
from tests.support import wheels
from tests.support.waiting import wait_until


def _serve_once(root: Path, cache: Path, first: Callable[[RunnerService], None] | None = None
                ) -> tuple[str, dict, int]:
    """One `./dev serve` on ``root``; ``first`` runs on the service before the quick start does."""
    out = io.StringIO()
    quick = Quickstart(out=out, cache=cache, test_wheels=wheels.ensure())
    settings = Settings.load(None, root=root, port=0, watch_drop_folder=False)

    def prepare(service: RunnerService) -> None:
        if first is not None:
            first(service)
        quick.prepare(service)

    daemon = Daemon(settings, before_serve=prepare)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: daemon.listening.is_set() or not thread.is_alive(), 300, "quickstart to serve")
        assert daemon.listening.is_set(), out.getvalue()
        quick.announce(str(daemon.url), settings)
        token = settings.layout.token_file.read_text().strip()
        with httpx.Client(base_url=str(daemon.url), headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as client:
            active = client.get("/algorithms/active").json()
            assert quick.sample is not None
            assert quick.serving, out.getvalue()
            status = client.post("/execute", data={"pid": quick.serving[0]},
                                 files={"image": ("s.png", quick.sample.read_bytes(), "image/png")}).status_code
    finally:
        daemon.request_stop()
        thread.join(120)
    return out.getvalue(), active, status


def test_quickstart_installs_activates_and_is_idempotent(tmp_path: Path) -> None:
    manifest = Quickstart(out=io.StringIO()).manifest()
    root, cache = tmp_path / "algorithms", tmp_path / "cache"
    first, active, status = _serve_once(root, cache)
    assert "procvision-cli package" in first and "activating" in first, first
    assert "run the example (" in first and "procvision-runner execute --pid" in first and "/execute" in first
    assert status == 200
    assert {pid: b["name"] for pid, b in active.items()} == {p: manifest["name"] for p in manifest["supported_pids"]}
    assert (cache / "dist" / f"{manifest['name']}-v{manifest['version']}-offline.zip").is_file()
    # The trusted path: a key made for the root, trusted, and the example signed with it.
    assert "made a signing key" in first and "signed " in first, first
    registry = json.loads((root / "registry.json").read_text())
    signature = next(r for r in registry["versions"] if r["name"] == manifest["name"])["signature"]
    assert signature["status"] == "verified" and signature["mode"] == "require", signature
    assert (root / "trust" / "quickstart.pem").is_file()
    assert stat.S_IMODE((root / ".signing" / "quickstart.key").stat().st_mode) == 0o600

    second, active_again, status = _serve_once(root, cache)
    assert "already installed" in second and "activating" not in second and "building" not in second
    assert "made a signing key" not in second
    assert active_again == active and status == 200
    assert EXAMPLE.is_dir()


def test_quickstart_guidance_names_a_pid_that_serves_the_example(tmp_path: Path) -> None:
    """A restart after A01 was bound to another algorithm: the quick start leaves A01 alone, says so,
    and shows how to call the example on a pid that still serves it."""
    manifest = Quickstart(out=io.StringIO()).manifest()
    first_pid, second_pid = manifest["supported_pids"][:2]
    root, cache = tmp_path / "algorithms", tmp_path / "cache"
    first, _, _ = _serve_once(root, cache)
    assert f"procvision-runner execute --pid {first_pid} " in first, first
    other = make_zip(tmp_path / "other", "1.0.0", name="other_algo", pids=(first_pid,))

    def rebind(service: RunnerService) -> None:
        service.install(Quickstart(out=io.StringIO(), cache=cache).sign(other, service.layout))
        service.deactivate([first_pid])
        service.activate("other_algo", "1.0.0", [first_pid])

    second, active, status = _serve_once(root, cache, first=rebind)
    assert active[first_pid]["name"] == "other_algo" and status == 200
    assert f"{first_pid} serves other_algo 1.0.0, not the example" in second, second
    guidance = second[second.index("run the example"):]
    assert f"--pid {second_pid} " in guidance and f"pid={second_pid} " in guidance, guidance
    assert f"pid={first_pid} " not in guidance and f"--pid {first_pid} " not in guidance, guidance
