"""Registry (registry.json under the root lock) and the store locks."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runner.errors import RunnerError
from runner.store.layout import RootLayout
from runner.store.locks import DaemonLock, root_lock, version_lock
from runner.store.registry import FIELDS, Registry


def _record(name: str = "algo", version: str = "1.0", state: str = "installed") -> dict[str, object]:
    return {"name": name, "version": version, "state": state, "supported_pids": ["P1"]}


def test_put_get_list_update_remove(tmp_path: Path) -> None:
    registry = Registry(RootLayout(tmp_path))
    assert registry.get("algo", "1.0") is None and registry.list() == []
    stored = registry.put(_record())
    assert set(FIELDS) <= stored.keys() and stored["created_at"] == stored["updated_at"]
    registry.put(_record(version="2.0", state="invalid"))
    registry.put(_record(name="other"))
    assert [r["version"] for r in registry.list(name="algo")] == ["1.0", "2.0"]
    assert [r["name"] for r in registry.list(state="installed")] == ["algo", "other"]
    updated = registry.update_state("algo", "1.0", "running")
    assert updated["state"] == "running" and updated["created_at"] == stored["created_at"]
    failed = registry.update_state("algo", "1.0", "failed", RunnerError("2005", "boom", step="x"))
    assert failed["last_error"] == {"code": "2005", "name": "install_failed", "message": "boom",
                                    "details": {"step": "x"}}
    assert registry.update("algo", "1.0", dialect="procvision")["dialect"] == "procvision"
    assert registry.remove("algo", "1.0") is True and registry.remove("algo", "1.0") is False
    data = json.loads((tmp_path / "registry.json").read_text())
    assert data["format"] == 1 and [r["name"] for r in data["versions"]] == ["algo", "other"]


def test_returned_records_are_copies(tmp_path: Path) -> None:
    registry = Registry(RootLayout(tmp_path))
    registry.put(_record())
    record = registry.require("algo", "1.0")
    record["supported_pids"].append("HACK")
    assert registry.require("algo", "1.0")["supported_pids"] == ["P1"]


def test_unknown_state_and_missing_record(tmp_path: Path) -> None:
    registry = Registry(RootLayout(tmp_path))
    with pytest.raises(ValueError):
        registry.put(_record(state="weird"))
    with pytest.raises(RunnerError) as caught:
        registry.update("nope", "1", state="installed")
    assert caught.value.code == "2009"


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    """Threads and another process update the same file; every record survives."""
    layout = RootLayout(tmp_path)
    script = (
        "import sys\nfrom pathlib import Path\nfrom runner.store.layout import RootLayout\n"
        "from runner.store.registry import Registry\n"
        "r = Registry(RootLayout(Path(sys.argv[1])))\n"
        "for i in range(30):\n    r.put({'name': 'proc', 'version': str(i), 'state': 'installed'})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])

    def writer(prefix: str) -> None:
        registry = Registry(layout)
        for i in range(30):
            registry.put(_record(name=prefix, version=str(i)))

    threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert proc.wait(timeout=60) == 0
    assert len(Registry(layout).list()) == 120


def test_corrupt_registry_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "registry.json").write_text("{broken")
    with pytest.raises(RunnerError) as caught:
        Registry(RootLayout(tmp_path)).list()
    assert "registry.json" in caught.value.message


def test_version_lock_is_busy_while_held(tmp_path: Path) -> None:
    layout = RootLayout(tmp_path)
    with version_lock(layout, "a", "1", timeout_s=1), pytest.raises(RunnerError) as caught, \
            version_lock(layout, "a", "1", timeout_s=0.1):
        pass
    assert caught.value.code == "2011"
    with version_lock(layout, "a", "1", timeout_s=1), version_lock(layout, "a", "2", timeout_s=0.1), \
            root_lock(layout, 0.1):
        pass  # other versions and the root lock are independent


def test_daemon_lock_refuses_a_second_daemon(tmp_path: Path) -> None:
    layout = RootLayout(tmp_path)
    first = DaemonLock(layout)
    first.acquire()
    try:
        with pytest.raises(RunnerError) as caught:
            DaemonLock(layout).acquire()
        assert caught.value.code == "2012" and caught.value.details["pid"] is not None
        # Another process is refused too, at once.
        code = ("import sys\nfrom pathlib import Path\nfrom runner.store.layout import RootLayout\n"
                "from runner.store.locks import DaemonLock\nfrom runner.errors import RunnerError\n"
                "try:\n    DaemonLock(RootLayout(Path(sys.argv[1]))).acquire()\nexcept RunnerError as e:\n"
                "    sys.exit(int(e.code) - 2000)\n")
        assert subprocess.run([sys.executable, "-c", code, str(tmp_path)], timeout=60).returncode == 12
    finally:
        first.release()
    with DaemonLock(layout) as again:
        assert again.held
