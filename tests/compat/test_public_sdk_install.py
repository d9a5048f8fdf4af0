"""Installing packages built with the PUBLIC ProcVision SDK through ``Installer`` directly: the public
packager's layout, dialect detection by the smoke test, the interpreter and wheel checks driven by
``.procvision_env.json`` (2003), and failures that only the public adapters produce."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.package.installer import Installer
from runner.package.interpreters import InterpreterFinder
from runner.store.registry import Registry
from tests.support import wheels as wheel_cache
from tests.support.packages import make_wheel, root_is_clean
from tests.support.public_packages import (
    EXECUTE_ONLY_SDK,
    PHASE_SDK,
    build_public_package,
    execute_only_source,
    phase_source,
    public_sdk_wheels,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ENV_38 = {"python_version": "3.8", "implementation": "cp", "abi": "cp38", "wheels_platform": "manylinux2014_x86_64"}
CP38 = "cp38-cp38-manylinux_2_17_x86_64"


def _installer(root: Path, uv_cache: Path, **overrides: Any) -> Installer:
    # Each test installs into a fresh root, so each would compile numpy's bytecode in the background
    # (~0.6 s of CPU the parallel tests share): off here, where nothing reads it;
    # test_install_bytecode.py guards the compile, and the daemon tests run with it on.
    settings = Settings(root=root, uv_cache_dir=uv_cache, **{"compile_bytecode": False, **overrides})
    return Installer(settings, Registry(settings.layout))


def _sdk_only(version: str) -> list[Path]:
    return [p for p in public_sdk_wheels(version) if p.name.startswith("procvision_algorithm_sdk-")]


def _installed_sdk_version(python: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('procvision_algorithm_sdk'))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


@pytest.mark.parametrize(("sdk", "dialect", "steps", "windows_made"), [
    (PHASE_SDK, "public-phase", ["hello", "info", "pre", "execute"], False),
    (EXECUTE_ONLY_SDK, "public-execute-only", ["hello", "execute"], True),
])
def test_public_package_installs_unchanged(tmp_path: Path, compat_uv_cache: Path, sdk: str, dialect: str,
                                           steps: list[str], windows_made: bool) -> None:
    zip_path = build_public_package(tmp_path / "src", sdk=sdk, name="pub", project_dir="my_project",
                                    windows_made=windows_made)
    assert zip_path.name == "pub-v1.0.0-offline.zip"
    installer = _installer(tmp_path / "root", compat_uv_cache)
    result = installer.install(zip_path)
    assert result.dialect == dialect and result.package_dir == result.version_dir / "my_project"
    assert result.report is not None and result.report["status"] == "PASS"
    assert [s["name"] for s in result.report["steps"]] == steps
    assert all(s["result"] == "PASS" for s in result.report["steps"]), result.report
    record = installer.registry.require("pub", "1.0.0")
    assert (record["dialect"], record["sdk_version"], record["package_dir"]) == (dialect, sdk, "my_project")
    assert f"procvision-algorithm-sdk=={sdk}" in record["wheels"]
    # The worker runs the PUBLIC adapter: the venv holds the public wheel, not ours.
    assert _installed_sdk_version(result.version_dir / "venv" / "bin" / "python") == sdk


def test_import_time_print_in_phase_era_fails_the_install_clearly(tmp_path: Path, compat_uv_cache: Path) -> None:
    """0.0.7 sends hello before importing the algorithm, so a print() at import lands in the frame
    stream right after it. The install must fail naming stdout, and leave nothing deployed."""
    source = 'print("loading model weights")\n' + phase_source("pub", "1.0.0", ["P001"])
    zip_path = build_public_package(tmp_path / "src", sdk=PHASE_SDK, name="pub", source=source)
    installer = _installer(tmp_path / "root", compat_uv_cache)
    with pytest.raises(RunnerError) as caught:
        installer.install(zip_path)
    err = caught.value
    assert err.code == "2010", err
    assert "stdout" in err.message, err.message
    assert root_is_clean(tmp_path / "root") == []


# --- 2003: the interpreter and the wheels, from .procvision_env.json --------------------------------


def test_env_python_differs_from_the_pinned_interpreter_is_2003(tmp_path: Path, compat_uv_cache: Path) -> None:
    """A station pinned to its Python (setting ``python``) gets a package made for 3.8: refused before
    any venv, naming the version the package's .procvision_env.json asks for and the interpreter."""
    numpy38 = make_wheel(tmp_path / "w", "numpy", "1.24.4", tag=CP38)
    zip_path = build_public_package(tmp_path / "src", sdk=EXECUTE_ONLY_SDK, name="pub", env_config=ENV_38,
                                    wheels=[*_sdk_only(EXECUTE_ONLY_SDK), numpy38])
    installer = _installer(tmp_path / "root", compat_uv_cache, python=sys.executable)
    with pytest.raises(RunnerError) as caught:
        installer.install(zip_path)
    err = caught.value
    assert err.code == "2003" and err.details["check"] == "python"
    assert "3.8" in err.message and sys.version.split()[0] in err.message
    assert root_is_clean(tmp_path / "root") == []


@pytest.mark.parametrize("wheel_name", [
    f"numpy-1.24.4-{CP38}.manylinux2014_x86_64.whl",  # downloaded for another Python
    # The public packager's default platform when .procvision_env.json names none.
    f"numpy-2.4.6-cp{sys.version_info[0]}{sys.version_info[1]}-cp{sys.version_info[0]}{sys.version_info[1]}-win_amd64.whl",
])
def test_wheels_for_another_python_or_platform_are_2003_naming_wheel_and_interpreter(
        tmp_path: Path, compat_uv_cache: Path, wheel_name: str) -> None:
    """The env file says the runner's own Python, but the wheels were downloaded for cp38 or for
    Windows: 2003 names the wheel and the interpreter."""
    # The file name is all the check reads: no venv is made for a package that cannot fit.
    numpy38 = tmp_path / "w" / wheel_name
    numpy38.parent.mkdir()
    numpy38.write_bytes(b"never opened")
    own = {**ENV_38, "python_version": f"{sys.version_info[0]}.{sys.version_info[1]}",
           "abi": f"cp{sys.version_info[0]}{sys.version_info[1]}"}
    zip_path = build_public_package(tmp_path / "src", sdk=EXECUTE_ONLY_SDK, name="pub", env_config=own,
                                    wheels=[*_sdk_only(EXECUTE_ONLY_SDK), numpy38])
    installer = _installer(tmp_path / "root", compat_uv_cache)
    with pytest.raises(RunnerError) as caught:
        installer.install(zip_path)
    err = caught.value
    assert err.code == "2003" and err.details["wheels"] == [numpy38.name]
    assert numpy38.name in err.message and sys.version.split()[0] in err.message
    assert root_is_clean(tmp_path / "root") == []


def _python38() -> str | None:
    found = [i for i in InterpreterFinder().discover() if i.version[:2] == (3, 8) and i.implementation == "cpython"]
    return found[0].path if found else None


def test_public_sdk_that_needs_a_newer_python_than_the_env_is_2003(tmp_path: Path, compat_uv_cache: Path) -> None:
    """.procvision_env.json says 3.8 and this machine has a 3.8, so the runner picks it; the wheels
    are cp38 too. But the public SDK 0.0.7 wheel declares Requires-Python >=3.10: the package can
    never install on 3.8, and that must be a 2003 naming the wheel and the interpreter, decided
    before any venv is built (not a 2005 from the installer tool)."""
    if _python38() is None:
        pytest.skip("no CPython 3.8 on this machine")
    wheels = [*_sdk_only(PHASE_SDK), make_wheel(tmp_path / "w", "numpy", "1.24.4", tag=CP38),
              make_wheel(tmp_path / "w", "pillow", "10.4.0", tag=CP38)]
    zip_path = build_public_package(tmp_path / "src", sdk=PHASE_SDK, name="pub", env_config=ENV_38, wheels=wheels)
    installer = _installer(tmp_path / "root", compat_uv_cache)
    with pytest.raises(RunnerError) as caught:
        installer.install(zip_path)
    err = caught.value
    assert err.code == "2003", f"{err.code} {err.message}"
    assert "procvision_algorithm_sdk-0.0.7-py3-none-any.whl" in err.message and ">=3.10" in err.message
    assert "3.8" in err.message
    assert root_is_clean(tmp_path / "root") == []


@pytest.mark.parametrize("sdk", [PHASE_SDK, EXECUTE_ONLY_SDK])
def test_slow_import_is_covered_by_the_handshake_deadline(tmp_path: Path, compat_uv_cache: Path, sdk: str) -> None:
    """Public adapters say hello BEFORE importing the algorithm, so a slow import (torch, a model
    loaded in the constructor) happens while the smoke test waits for its first reply. That wait is
    the load, and the handshake deadline must cover it, as it does for our adapter (hello after
    import), not the much shorter deadline of an info or execute call."""
    body = phase_source("pub", "1.0.0", ["P001"]) if sdk == PHASE_SDK else execute_only_source()
    # A second longer than the 2 s info and execute deadlines it must not count against.
    source = "import time\ntime.sleep(3.0)  # a heavy import\n" + body
    zip_path = build_public_package(tmp_path / "src", sdk=sdk, name="pub", source=source)
    installer = _installer(tmp_path / "root", compat_uv_cache, info_timeout_ms=2000, execute_timeout_ms=2000,
                           handshake_timeout_ms=60000)
    result = installer.install(zip_path)
    assert result.report is not None and result.report["status"] == "PASS", result.report


def test_env_file_chooses_another_interpreter_for_the_venv(tmp_path: Path, compat_uv_cache: Path) -> None:
    """.procvision_env.json says 3.12 and the wheels are cp312: the runner builds the venv with a
    3.12 interpreter (not its own) and the public worker runs there."""
    if sys.version_info[:2] == (3, 12):
        pytest.skip("the runner itself runs 3.12")
    numpy312 = sorted(wheel_cache.CACHE.glob("numpy-*-cp312-cp312-*.whl"))
    found = [i for i in InterpreterFinder().discover() if i.version[:2] == (3, 12) and i.implementation == "cpython"]
    if not numpy312 or not found:
        pytest.skip("no CPython 3.12 or no cached cp312 numpy wheel on this machine")
    env = {**ENV_38, "python_version": "3.12", "abi": "cp312"}
    zip_path = build_public_package(tmp_path / "src", sdk=EXECUTE_ONLY_SDK, name="pub", env_config=env,
                                    wheels=[*_sdk_only(EXECUTE_ONLY_SDK), numpy312[-1]])
    installer = _installer(tmp_path / "root", compat_uv_cache)
    result = installer.install(zip_path)
    assert result.dialect == "public-execute-only" and result.report is not None
    assert installer.registry.require("pub", "1.0.0")["python_version"].startswith("3.12.")
    done = subprocess.run([str(result.version_dir / "venv" / "bin" / "python"), "-c",
                           "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.strip() == "(3, 12)"
