"""The runner's own uv cache under the root: versions sharing wheels link them from it, a damaged cache
entry costs one unpack (never the install), and a station without uv installs offline with pip."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.package.installer import Installer, InstallResult
from runner.store.registry import Registry
from tests.support.packages import build_package, manifest_for, root_is_clean

pytestmark = pytest.mark.slow

SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def _installer(root: Path) -> Installer:
    settings = Settings(root=root)
    return Installer(settings, Registry(settings.layout))


def _install(installer: Installer, tmp_path: Path, version: str) -> InstallResult:
    return installer.install(build_package(tmp_path / f"pkg-{version}", manifest=manifest_for(version=version)))


def _unpacked(installer: Installer) -> list[Path]:
    """The wheels uv has unpacked into its cache (one folder per unpack)."""
    archives = installer.settings.uv_cache / "archive-v0"
    return sorted(archives.iterdir()) if archives.is_dir() else []


def test_versions_sharing_wheels_link_them_from_the_cache_under_the_root(tmp_path: Path) -> None:
    installer = _installer(tmp_path / "root")
    assert installer.settings.uv_cache == installer.layout.uv_cache
    assert installer.layout.uv_cache.is_relative_to(installer.layout.root)
    first = _install(installer, tmp_path, "1.0.0")
    unpacked = _unpacked(installer)
    assert unpacked, "the first install filled the runner's uv cache"
    second = _install(installer, tmp_path, "1.0.1")
    assert _unpacked(installer) == unpacked, "the second version unpacked nothing again"
    numpy_files = [result.version_dir / "venv" / SITE / "numpy" / "__init__.py" for result in (first, second)]
    assert os.stat(numpy_files[0]).st_ino == os.stat(numpy_files[1]).st_ino, "one copy on disk, linked twice"
    assert installer.registry.require("demo_algo", "1.0.1")["installer"] == "uv"


def _remove_unpacked(installer: Installer) -> None:
    for folder in _unpacked(installer):
        shutil.rmtree(folder)


def _garble_pointers(installer: Installer) -> None:
    pointers = list((installer.settings.uv_cache / "wheels-v8").rglob("*.rev"))
    assert pointers, "uv keeps a pointer per cached local wheel"
    for pointer in pointers:
        pointer.write_bytes(b"garbage")


@pytest.mark.parametrize("damage", [_remove_unpacked, _garble_pointers], ids=["unpacked-removed", "pointer-garbled"])
def test_a_damaged_cache_entry_does_not_break_an_install(tmp_path: Path,
                                                         damage: Callable[[Installer], None]) -> None:
    installer = _installer(tmp_path / "root")
    _install(installer, tmp_path, "1.0.0")
    damage(installer)
    result = _install(installer, tmp_path, "1.0.1")
    assert result.state == "installed" and result.report is not None and result.report["status"] == "PASS"
    assert (result.version_dir / "venv" / SITE / "numpy" / "__init__.py").is_file()
    assert _unpacked(installer), "the cache was repaired for the next version"


def test_without_uv_auto_installs_offline_with_pip(tmp_path: Path) -> None:
    root = tmp_path / "root"
    # An index in the environment must not be used (the station is offline; pip gets --no-index).
    settings = Settings(root=root).with_environment({**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/simple"})
    installer = Installer(settings, Registry(settings.layout), locate_uv=lambda: None)
    result = _install(installer, tmp_path, "1.0.0")
    assert result.state == "installed"
    assert installer.registry.require("demo_algo", "1.0.0")["installer"] == "pip"
    assert (result.version_dir / "venv" / "bin" / "pip").exists(), "a virtualenv + pip venv"
    assert not _unpacked(installer), "uv did not run"


def test_installer_uv_without_uv_is_2005_naming_the_setting(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path / "root", installer="uv")
    installer = Installer(settings, Registry(settings.layout), locate_uv=lambda: None)
    with pytest.raises(RunnerError) as caught:
        _install(installer, tmp_path, "1.0.0")
    assert caught.value.code == "2005" and "installer" in caught.value.message
    assert root_is_clean(installer.layout.root) == []
