"""Bytecode of uv-built venvs: compiled by the runner after publishing (never by running package code),
linked into later versions that share the same files, and off when ``compile_bytecode`` is false."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from runner.config import Settings
from runner.package.bytecode import BytecodeCompiler
from runner.package.installer import Installer, InstallResult
from runner.store.registry import Registry
from tests.support.packages import build_package, make_wheel, manifest_for, runtime_wheels
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
TAG = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
COMPILE_DEADLINE_S = 600.0


def _installer(root: Path, compile_bytecode: bool = True) -> Installer:
    settings = Settings(root=root, compile_bytecode=compile_bytecode)
    return Installer(settings, Registry(settings.layout))


def _install(installer: Installer, tmp_path: Path, version: str, canary: Path) -> InstallResult:
    # A dependency the algorithm never imports; importing it would write the canary file.
    unused = make_wheel(tmp_path / f"wheels-{version}", "canary-mod", "1.0", files={
        "canary_mod/__init__.py": f"import pathlib\npathlib.Path({str(canary)!r}).write_text('ran')\n",
        "canary_mod/helpers.py": "VALUE = 1\n",
        "canary_mod/tests/__init__.py": "", "canary_mod/tests/test_canary.py": "def test_value():\n    pass\n"})
    return installer.install(build_package(
        tmp_path / f"pkg-{version}", manifest=manifest_for(version=version), wheels=[*runtime_wheels(), unused],
        requirements="procvision-algorithm-sdk\nnumpy\ncanary-mod\n"))


def _pyc(result: InstallResult, module_dir: str) -> Path:
    return result.version_dir / "venv" / SITE / module_dir / "__pycache__" / f"__init__.{TAG}.pyc"


def test_published_venv_is_compiled_without_running_package_code(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    installer = _installer(tmp_path / "root")
    result = _install(installer, tmp_path, "1.0.0", canary)
    assert installer.bytecode.wait(COMPILE_DEADLINE_S), "the background compile ended"
    assert _pyc(result, "numpy").is_file()
    assert _pyc(result, "canary_mod").is_file(), "modules nothing imported are compiled too"
    site = result.version_dir / "venv" / SITE
    assert (site / "canary_mod" / "__pycache__" / f"helpers.{TAG}.pyc").is_file()
    # The test suites packages ship are never imported by a worker: not compiled.
    assert not (site / "canary_mod" / "tests" / "__pycache__").exists()
    assert not (site / "numpy" / "_core" / "tests" / "__pycache__").exists()
    assert (site / "numpy" / "_core" / "__pycache__" / f"multiarray.{TAG}.pyc").is_file()
    assert not canary.exists(), "compiling ran none of the package's code"


def test_a_later_version_links_the_bytecode_of_shared_files(tmp_path: Path) -> None:
    installer = _installer(tmp_path / "root")
    first = _install(installer, tmp_path, "1.0.0", tmp_path / "canary")
    assert installer.bytecode.wait(COMPILE_DEADLINE_S)
    second = _install(installer, tmp_path, "1.0.1", tmp_path / "canary")
    # Linked before the smoke test (the second compile leaves up-to-date files alone): one inode.
    assert os.stat(_pyc(first, "numpy")).st_ino == os.stat(_pyc(second, "numpy")).st_ino
    assert installer.bytecode.wait(COMPILE_DEADLINE_S)


def test_removing_a_version_ends_its_compile_and_nothing_reappears(tmp_path: Path) -> None:
    installer = _installer(tmp_path / "root")
    result = _install(installer, tmp_path, "1.0.0", tmp_path / "canary")
    # compileall goes in name order: canary_mod is done, numpy is being compiled (or done: then
    # nothing may reappear all the same).
    wait_until(lambda: _pyc(result, "canary_mod").exists(), COMPILE_DEADLINE_S, "the compile to be under way")
    installer.remove(result.name, result.version)
    assert installer.bytecode.wait(COMPILE_DEADLINE_S)
    assert not result.version_dir.exists(), "a compile must not recreate a removed version's folders"


def test_compile_bytecode_off_leaves_venvs_as_uv_built_them(tmp_path: Path) -> None:
    installer = _installer(tmp_path / "root", compile_bytecode=False)
    result = _install(installer, tmp_path, "1.0.0", tmp_path / "canary")
    assert installer.bytecode.wait(COMPILE_DEADLINE_S)
    assert not _pyc(result, "numpy").exists()


def test_a_failed_compile_leaves_no_bytecode_behind(tmp_path: Path) -> None:
    # On a full disk a .pyc write can stop short without an error, and Python then fails the import
    # ("marshal data too short") instead of compiling the source: a failed compile removes its .pyc.
    site = tmp_path / "site-packages"
    (site / "pkg" / "__pycache__").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    compiler_stand_in = tmp_path / "python"
    compiler_stand_in.write_text("#!/bin/sh\n"
                                 f"printf 'truncated' > {site}/pkg/__pycache__/__init__.cpython-311.pyc\n"
                                 "echo 'No space left on device' >&2\nexit 1\n")
    compiler_stand_in.chmod(0o755)
    settings = Settings(root=tmp_path / "root", bytecode_timeout_s=60)
    compiler = BytecodeCompiler(settings, dict(os.environ))
    compiler.start(str(compiler_stand_in), site)
    assert compiler.wait(60)
    assert not list(site.rglob("*.pyc"))
    assert (site / "pkg" / "__init__.py").exists()  # the source stays: workers compile it in memory
