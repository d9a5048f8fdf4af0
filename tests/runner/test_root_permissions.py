"""The root is private to the daemon's user and group; a readable token and --no-auth off loopback
are refused at start with a message that says how to fix them (2018 insecure_setup)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from runner.api.auth import is_loopback_host
from runner.config import Settings
from runner.daemon import Daemon
from runner.errors import RunnerError
from runner.store.layout import RootLayout
from runner.store.registry import INSTALLED, Registry
from tests.api.support import ServeProcess, start_server


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_daemon_root_folders_and_files_are_not_world_readable(tmp_path: Path) -> None:
    root = tmp_path / "root"
    server = start_server(root)
    try:
        with server.client() as client:
            assert client.get("/readyz").status_code == 200
        assert _mode(root) == 0o750
        for folder in ("deployed", "active", "logs", "zips", ".staging", ".locks"):
            assert _mode(root / folder) & 0o027 == 0, folder
        assert _mode(root / ".token") == 0o600
        Registry(RootLayout(root)).put({"name": "a", "version": "1", "state": INSTALLED})
        assert _mode(root / "registry.json") == 0o640
    finally:
        server.stop()


def test_an_existing_open_root_is_tightened(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.chmod(root, 0o777)
    RootLayout(root).ensure()
    assert _mode(root) == 0o750


def test_a_group_readable_token_is_refused_with_the_fix(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    token = root / ".token"
    token.write_text("s3cret-token-value\n")
    os.chmod(token, 0o644)
    daemon = Daemon(Settings.load(None, root=root, port=0, watch_drop_folder=False))
    with pytest.raises(RunnerError) as caught:
        daemon.run()
    assert caught.value.code == "2018"
    assert f"chmod 600 {token}" in caught.value.message
    assert "s3cret" not in caught.value.message
    assert not daemon.listening.is_set()

    os.chmod(token, 0o600)
    server = start_server(root)
    try:
        with server.client(token="s3cret-token-value") as client:
            assert client.get("/algorithms").status_code == 200
    finally:
        server.stop()


def test_serve_refuses_no_auth_off_loopback(tmp_path: Path) -> None:
    proc = ServeProcess(tmp_path / "root", "--no-auth", "--host", "0.0.0.0", "--port", "0")
    code = proc.wait()
    assert code == 28, proc.stderr  # 10 + 18
    text = "\n".join(proc.stderr)
    assert "2018" in text and "loopback" in text and "127.0.0.1" in text


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.0.2.10", False),
])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
