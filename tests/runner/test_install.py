"""Real installs: offline venvs from bundled wheels, the protocol smoke test, publishing, conflicts,
removal, recovery and concurrency."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.package.installer import MARKER, STAGES, Installer
from runner.store.registry import Registry
from tests.support.packages import (
    algorithm_files,
    build_package,
    make_wheel,
    manifest_for,
    root_is_clean,
    runtime_wheels,
    standard_algorithm,
)
from tests.support.processes import descendants
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One warm uv cache per xdist worker keeps the suite fast; uv locks its cache itself.
    return tmp_path_factory.getbasetemp() / "uv-cache-install"


def _installer(tmp_path: Path, uv_cache: Path, **overrides: Any) -> Installer:
    # Each test installs into a fresh root, so each would compile numpy's bytecode in the background
    # (~0.6 s of CPU the parallel tests share): off here, where nothing reads it;
    # test_install_bytecode.py guards the compile, and the daemon tests run with it on.
    settings = Settings(root=tmp_path / "root", uv_cache_dir=uv_cache, **{"compile_bytecode": False, **overrides})
    return Installer(settings, Registry(settings.layout))


def _source(body_execute: str = "", body_info: str = "", prelude: str = "") -> str:
    """The standard algorithm with pieces replaced, for smoke-test failures."""
    text = standard_algorithm()
    if prelude:
        text = prelude + "\n" + text
    if body_info:
        text = text.replace("    def get_info(self):\n", f"    def get_info(self):\n{body_info}\n", 1)
    if body_execute:
        text = text.replace("        image = read_image_from_shared_memory", f"{body_execute}\n        image = "
                            "read_image_from_shared_memory", 1)
    return text


def test_happy_path_installs_publishes_and_registers(tmp_path: Path, uv_cache: Path) -> None:
    files = {**algorithm_files(manifest_for()), "tools/run.sh": "#!/bin/sh\necho hi\n"}
    path = build_package(tmp_path / "src", files=files, executable=["tools/run.sh"], zip_name="whatever.zip")
    installer = _installer(tmp_path, uv_cache)
    stages: list[str] = []
    result = installer.install(path, progress=stages.append)
    assert stages == list(STAGES)
    assert (result.name, result.version, result.state, result.idempotent) == ("demo_algo", "1.0.0", "installed", False)
    layout = installer.layout
    assert result.version_dir == layout.version_dir("demo_algo", "1.0.0")
    assert (result.version_dir / "venv" / "bin" / "python").exists()
    assert (result.package_dir / "algo" / "main.py").is_file()
    assert os.stat(result.package_dir / "tools" / "run.sh").st_mode & 0o111, "exec bits are kept"
    assert (result.version_dir / MARKER).is_file()
    assert list(layout.staging.iterdir()) == []
    assert result.dialect == "procvision"
    assert result.report is not None and result.report["status"] == "PASS"
    assert [s["name"] for s in result.report["steps"]] == ["hello", "info", "pre", "execute"]
    record = installer.registry.get("demo_algo", "1.0.0")
    assert record is not None
    assert record["state"] == "installed" and record["supported_pids"] == ["P001"]
    assert record["zip_name"] == "whatever.zip" and len(record["zip_sha256"]) == 64
    assert record["python_version"].startswith("3.11") and record["dialect"] == "procvision"
    assert record["entry_point"] == "algo.main:Algorithm" and record["package_dir"] == "."
    assert record["smoke"]["status"] == "PASS" and record["last_error"] is None
    assert record["created_at"] and record["updated_at"]
    # The published venv runs from its final place (it was built in staging).
    out = subprocess.run([str(result.version_dir / "venv/bin/python"), "-c",
                          "import numpy, procvision_algorithm_sdk, sys; print(sys.prefix)"],
                         capture_output=True, text=True, timeout=60, check=True)
    assert Path(out.stdout.strip()) == result.version_dir / "venv"


def test_reinstall_is_idempotent_and_other_content_conflicts(tmp_path: Path, uv_cache: Path) -> None:
    installer = _installer(tmp_path, uv_cache)
    path = build_package(tmp_path / "src")
    first = installer.install(path)
    stages: list[str] = []
    again = installer.install(path, progress=stages.append)
    assert again.idempotent and stages == ["checking"] and again.zip_sha256 == first.zip_sha256
    changed = build_package(tmp_path / "src2", files={**algorithm_files(manifest_for()), "extra.txt": "new"})
    with pytest.raises(RunnerError) as caught:
        installer.install(changed)
    assert caught.value.code == "2008"
    record = installer.registry.get("demo_algo", "1.0.0")
    assert record is not None and record["zip_sha256"] == first.zip_sha256 and record["state"] == "installed"
    assert not (first.version_dir / "extra.txt").exists()


def test_public_packager_layout_installs(tmp_path: Path, uv_cache: Path) -> None:
    installer = _installer(tmp_path, uv_cache)
    path = build_package(tmp_path / "src", layout="public")
    with zipfile.ZipFile(path) as zf:
        assert any(n.startswith("wheels/") for n in zf.namelist())
        assert "demo_algo/requirements.sanitized.txt" in zf.namelist()
    result = installer.install(path)
    assert result.package_dir == result.version_dir / "demo_algo"
    assert installer.registry.require("demo_algo", "1.0.0")["package_dir"] == "demo_algo"


@pytest.mark.parametrize(("case", "source", "fragment"), [
    ("info_mismatch", _source(body_info="        return {'name': NAME, 'version': '9.9.9', "
                                        "'supported_pids': PIDS, 'steps': []}"), "version"),
    ("crash", _source(body_execute="        import os; os._exit(3)"), "execute"),
    ("schema", _source(body_execute="        return {'status': 'OK', 'data': {'result_status': 'MAYBE'}}"),
     "result_status"),
    ("import_error", _source(prelude="import no_such_module_here"), "hello"),
    ("timeout", _source(body_execute="        import time; time.sleep(60)"), "execute"),
])
def test_smoke_failure_records_invalid_and_publishes_nothing(tmp_path: Path, uv_cache: Path, case: str,
                                                             source: str, fragment: str) -> None:
    installer = _installer(tmp_path, uv_cache, execute_timeout_ms=1500)
    path = build_package(tmp_path / "src", files={"algo/__init__.py": "", "algo/main.py": source})
    with pytest.raises(RunnerError) as caught:
        installer.install(path)
    err = caught.value
    assert err.code == "2010", err
    assert fragment in err.message
    assert root_is_clean(installer.layout.root) == []
    record = installer.registry.get("demo_algo", "1.0.0")
    assert record is not None and record["state"] == "invalid"
    assert record["last_error"]["code"] == "2010"
    assert record["smoke"]["status"] == "FAIL" and record["smoke"]["steps"][-1]["result"] == "FAIL"
    assert not installer.layout.version_dir("demo_algo", "1.0.0").exists()


def test_status_error_on_synthetic_image_is_accepted(tmp_path: Path, uv_cache: Path) -> None:
    source = _source(body_execute="        return {'status': 'ERROR', 'message': 'no part found', "
                                  "'error_code': '1002'}")
    installer = _installer(tmp_path, uv_cache)
    result = installer.install(build_package(tmp_path / "src", files={"algo/__init__.py": "", "algo/main.py": source}))
    assert result.state == "installed"
    assert result.report is not None
    execute = result.report["steps"][-1]
    assert execute["name"] == "execute" and execute["status"] == "ERROR"


def test_install_failure_is_2005_with_stderr_tail(tmp_path: Path, uv_cache: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "broken", "1.0")
    with zipfile.ZipFile(wheel) as zf:
        items = [(i, zf.read(i)) for i in zf.infolist()]
    with zipfile.ZipFile(wheel, "w") as zf:
        for info, data in items:
            if info.filename.endswith("/WHEEL"):
                data = b"Wheel-Version: 9.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            zf.writestr(info, data)
    path = build_package(tmp_path / "src", wheels=[*runtime_wheels(), wheel],
                         requirements="procvision-algorithm-sdk\nnumpy\nbroken\n")
    installer = _installer(tmp_path, uv_cache)
    stages: list[str] = []
    with pytest.raises(RunnerError) as caught:
        installer.install(path, progress=stages.append)
    assert caught.value.code == "2005"
    assert "broken" in caught.value.details["stderr_tail"]
    assert stages[-1] == "installing"
    assert root_is_clean(installer.layout.root) == []


def test_install_for_another_interpreter(tmp_path: Path, uv_cache: Path) -> None:
    """python_requires ==3.12.* picks the pyenv 3.12 interpreter; the venv and smoke test use it."""
    if not Path("/root/.pyenv/versions/3.12.1/bin/python").exists():
        pytest.skip("no Python 3.12 on this machine")
    manifest = manifest_for(python_requires="==3.12.*")
    path = build_package(tmp_path / "src", manifest=manifest, wheels=runtime_wheels("3.12"))
    result = _installer(tmp_path, uv_cache).install(path)
    assert result.python is not None and "3.12" in result.python
    record = Registry(Settings(root=tmp_path / "root").layout).require("demo_algo", "1.0.0")
    assert record["python_version"].startswith("3.12.")
    out = subprocess.run([str(result.version_dir / "venv/bin/python"), "-c", "import sys; print(sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "(3, 12)"


def test_pip_fallback(tmp_path: Path, uv_cache: Path) -> None:
    installer = _installer(tmp_path, uv_cache, installer="pip")
    result = installer.install(build_package(tmp_path / "src"))
    assert result.state == "installed"
    assert installer.registry.require("demo_algo", "1.0.0")["installer"] == "pip"
    assert (result.version_dir / "venv" / "bin" / "pip").exists(), "a pip-built venv"


def test_remove(tmp_path: Path, uv_cache: Path) -> None:
    installer = _installer(tmp_path, uv_cache)
    result = installer.install(build_package(tmp_path / "src"))
    other = installer.install(build_package(tmp_path / "src2", manifest=manifest_for(version="1.0.1"),
                                            files=algorithm_files(manifest_for(version="1.0.1"))))
    wheelhouse = installer.layout.root / ".wheelhouse"
    linked = sorted(wheelhouse.glob("*/*.whl"))
    assert len(linked) == 2, "numpy and the SDK, linked content-addressed"
    numpy = next(p for p in linked if p.name.startswith("numpy"))
    assert numpy.samefile(next((other.version_dir / "wheels").glob("numpy-*.whl"))), "versions share one copy"
    installer.remove("demo_algo", "1.0.0")
    assert not result.version_dir.exists()
    installer.recover()
    assert sorted(wheelhouse.glob("*/*.whl")) == linked, "still shared by 1.0.1"
    installer.remove("demo_algo", "1.0.1")
    installer.recover()
    assert list(wheelhouse.glob("*/*.whl")) == [], "links no version shares are pruned at start"
    assert installer.registry.get("demo_algo", "1.0.0") is None
    assert list(installer.layout.trash.iterdir()) == []
    with pytest.raises(RunnerError) as caught:
        installer.remove("demo_algo", "1.0.0")
    assert caught.value.code == "2009"


def test_concurrent_installs_of_one_version_are_serialised(tmp_path: Path, uv_cache: Path) -> None:
    path = build_package(tmp_path / "src")
    results: list[Any] = []

    def run() -> None:
        settings = Settings(root=tmp_path / "root", uv_cache_dir=uv_cache)
        try:
            results.append(Installer(settings, Registry(settings.layout)).install(path))
        except RunnerError as exc:
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert sorted(r.idempotent for r in results) == [False, True], results
    registry = Registry(Settings(root=tmp_path / "root").layout)
    assert [(r["name"], r["state"]) for r in registry.list()] == [("demo_algo", "installed")]


def test_uninstall_racing_an_install_waits_for_it(tmp_path: Path, uv_cache: Path) -> None:
    installer = _installer(tmp_path, uv_cache)
    path = build_package(tmp_path / "src")
    reached = threading.Event()
    outcome: list[Any] = []

    def progress(stage: str) -> None:
        if stage == "installing":
            reached.set()

    thread = threading.Thread(target=lambda: outcome.append(installer.install(path, progress=progress)))
    thread.start()
    assert reached.wait(timeout=120)
    installer.remove("demo_algo", "1.0.0")  # blocks on the version lock until the install is done
    thread.join(timeout=120)
    assert outcome and outcome[0].state == "installed"
    assert installer.registry.get("demo_algo", "1.0.0") is None
    assert not installer.layout.version_dir("demo_algo", "1.0.0").exists()


# --- crash recovery ---------------------------------------------------------------------------------


def test_recover_reconciles_disk_and_registry(tmp_path: Path, uv_cache: Path) -> None:
    installer = _installer(tmp_path, uv_cache)
    result = installer.install(build_package(tmp_path / "src"))
    layout = installer.layout
    # 1. A published folder whose registry write was lost is registered again from its marker.
    installer.registry.remove("demo_algo", "1.0.0")
    # 2. A deployed folder without a marker is garbage.
    junk = layout.version_dir("junk", "0.1")
    (junk / "venv").mkdir(parents=True)
    # 3. A record whose folder is gone becomes invalid with a reason.
    installer.registry.put({"name": "ghost", "version": "1.0", "state": "installed", "supported_pids": ["X"]})
    # 4. Stale staging and trash.
    (layout.staging / "abc" / "venv").mkdir(parents=True)
    (layout.trash / "old").mkdir(parents=True)
    installer.recover()
    assert installer.registry.require("demo_algo", "1.0.0")["state"] == "installed"
    assert result.version_dir.is_dir()
    assert not junk.exists() and not junk.parent.exists()
    ghost = installer.registry.require("ghost", "1.0")
    assert ghost["state"] == "invalid" and "missing" in ghost["last_error"]["message"]
    assert list(layout.staging.iterdir()) == [] and list(layout.trash.iterdir()) == []


# The stage file is replaced, never rewritten in place, so the test cannot read it half-written (an
# empty read was seen in CI). The install holds on entering "publishing": the kill must land before
# the publish, however late a loaded machine lets the test's poll run.
_KILL_SCRIPT = """
import os
import sys
import threading
from pathlib import Path
from runner.config import Settings
from runner.package.installer import Installer
from runner.store.registry import Registry
settings = Settings(root=Path(sys.argv[1]), uv_cache_dir=Path(sys.argv[3]))
stage_file = Path(sys.argv[4])
def progress(stage):
    tmp = stage_file.with_name("stage.tmp")
    tmp.write_text(stage)
    os.replace(tmp, stage_file)
    if stage == "publishing":
        threading.Event().wait(600)
Installer(settings, Registry(settings.layout)).install(Path(sys.argv[2]), progress=progress)
"""




def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"  # gone


@pytest.mark.parametrize("kill_at", ["creating venv", "installing", "smoke test"])
def test_kill_9_during_install_then_recover(tmp_path: Path, uv_cache: Path, kill_at: str) -> None:
    path = build_package(tmp_path / "src")
    root = tmp_path / "root"
    stage_file = tmp_path / "stage"
    script = tmp_path / "install.py"
    script.write_text(_KILL_SCRIPT)
    # The kill takes the installer and every process it started (uv runs in its own session, so: its
    # descendants too), as systemd does with the unit's cgroup when the daemon dies; a uv left running
    # could write into staging after recover.
    proc = subprocess.Popen([sys.executable, str(script), str(root), str(path), str(uv_cache), str(stage_file)],
                            cwd=str(Path(__file__).resolve().parents[2]), start_new_session=True)
    try:
        # Mid-way = at kill_at or a later stage before publishing (a short stage may be over before
        # the poll sees it; the next one is just as much "mid-way").
        midway = list(STAGES[STAGES.index(kill_at):STAGES.index("publishing")])
        seen: list[str] = []

        def reached() -> bool:
            if stage_file.exists():
                seen.append(stage_file.read_text())
            return proc.poll() is not None or (bool(seen) and seen[-1] in (*midway, "publishing"))

        wait_until(reached, what=f"the install to reach {kill_at!r}", interval_s=0.002)
        assert proc.poll() is None, "the install process ended before it could be killed"
        assert seen[-1] in midway, f"the install was not caught mid-way (last stage seen: {seen[-1]!r})"
        steps = descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in steps:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
        wait_until(lambda: not any(Path(f"/proc/{pid}").exists() and _state(pid) != "Z" for pid in steps),
                   what="the install's steps to be gone")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    settings = Settings(root=root, uv_cache_dir=uv_cache)
    installer = Installer(settings, Registry(settings.layout))
    installer.recover()
    assert list(settings.layout.staging.iterdir()) == []
    assert not settings.layout.version_dir("demo_algo", "1.0.0").exists()
    assert all(r["state"] != "installed" for r in installer.registry.list())
    # The version installs cleanly afterwards.
    assert installer.install(path).state == "installed"
    assert json.loads(settings.layout.registry_file.read_text())["versions"][0]["state"] == "installed"
