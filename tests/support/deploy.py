"""Quickly "deployed" algorithm versions for supervision and routing tests.

Building a venv per test would take seconds each, so one real venv per SDK flavour is built once
per test session (uv, offline, from the wheel cache) under pytest's shared base temp folder, guarded
by a file lock so xdist workers build it once. Each test then gets a version folder with the
algorithm source and manifest.json, whose ``venv`` is a symlink to that shared venv.

Usage in a conftest or test module::

    from tests.support.deploy import deployer  # noqa: F401  (the fixture)

    def test_x(deployer):
        dep = deployer.deploy("algo", "1.0.0", SOURCE)        # our SDK
        dep = deployer.deploy("algo", "1.0.0", SOURCE, sdk="0.0.7")  # public SDK
        spec = dep.spec()
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from runner.store.layout import RootLayout
from runner.supervision.spec import WorkerSpec
from tests.support import wheels

REPO = Path(__file__).resolve().parents[2]
SDK_DIR = REPO / "sdk"
OURS = "ours"
_UV_TIMEOUT_S = 300.0


def _uv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uv", *args], capture_output=True, text=True,
                          timeout=_UV_TIMEOUT_S, check=False)


#: Workers see their venv read-only and write no bytecode: compiled once here, numpy's import is
#: not compiled again at each of the suite's many worker starts.
_COMPILE = "--compile-bytecode"


def _install_ours(python: Path, venv: Path) -> None:
    # Editable SDK: the venv runs the repository's SDK source, so tests see the current code.
    # Building the editable needs hatchling, which only uv's cache can provide offline; without it,
    # install the dependencies and point a .pth file at the SDK source (what an editable does).
    done = _uv("pip", "install", _COMPILE, "--python", str(python), "--offline", "--find-links", str(wheels.CACHE),
               "-e", str(SDK_DIR), "numpy", "pillow")
    if done.returncode == 0:
        return
    done = _uv("pip", "install", _COMPILE, "--python", str(python), "--offline", "--no-index", "--find-links",
               str(wheels.CACHE), "numpy", "pillow")
    if done.returncode != 0:
        raise RuntimeError(f"uv pip install failed: {done.stderr}")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    (Path(site) / "procvision_sdk_source.pth").write_text(str(SDK_DIR) + "\n", encoding="utf-8")


def _install_public(python: Path, version: str) -> None:
    links = wheels.PUBLIC_SDK / version
    done = _uv("pip", "install", _COMPILE, "--python", str(python), "--offline", "--no-index", "--find-links",
               str(links), f"procvision_algorithm_sdk=={version}")
    if done.returncode != 0:
        raise RuntimeError(f"uv pip install of public SDK {version} failed: {done.stderr}")


def build_shared_venv(base: Path, sdk: str) -> Path:
    """The shared venv for ``sdk`` ("ours" or a public version), built once under ``base``."""
    # Keyed by the interpreter: a rebuilt .venv must not reuse venvs made from the old one.
    key = hashlib.sha256(f"{sys.executable}|{sys.version}".encode()).hexdigest()[:10]
    venv = base / f"venv-{sdk}-{key}"
    marker = venv / ".ready"
    base.mkdir(parents=True, exist_ok=True)
    with FileLock(str(base / f"venv-{sdk}.lock"), timeout=_UV_TIMEOUT_S * 2):
        if marker.exists():
            return venv
        wheels.ensure()
        done = _uv("venv", "--quiet", "--python", sys.executable, str(venv))
        if done.returncode != 0:
            raise RuntimeError(f"uv venv failed: {done.stderr}")
        python = venv / "bin" / "python"
        if sdk == OURS:
            _install_ours(python, venv)
        else:
            _install_public(python, sdk)
        marker.touch()
    return venv


@dataclass
class Deployed:
    """A deployed version: its folder, the folder holding manifest.json, and its interpreter."""

    name: str
    version: str
    version_dir: Path
    package_dir: Path
    python: Path

    def spec(self, entry_point: str | None = None) -> WorkerSpec:
        return WorkerSpec(self.name, self.version, self.version_dir, self.package_dir, self.python, entry_point)


class Deployer:
    """Makes deployed versions under one runtime root (``layout``)."""

    def __init__(self, root: Path, venv_base: Path) -> None:
        self.layout = RootLayout(root)
        self.layout.ensure()
        self._venv_base = venv_base

    def deploy(self, name: str, version: str, source: str, *, sdk: str = OURS, module: str = "algo",
               class_name: str = "Algo", subfolder: str | None = None, files: dict[str, str] | None = None,
               manifest: dict[str, Any] | None = None) -> Deployed:
        """Write ``source`` as ``<module>.py`` plus manifest.json into a new version folder.

        ``subfolder`` puts the package one folder down (the "project dir" zip layout).
        """
        venv = build_shared_venv(self._venv_base, sdk)
        version_dir = self.layout.version_dir(name, version)
        version_dir.mkdir(parents=True, exist_ok=False)
        package_dir = version_dir / subfolder if subfolder else version_dir
        package_dir.mkdir(parents=True, exist_ok=True)
        (package_dir / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        for rel, text in (files or {}).items():
            target = package_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text), encoding="utf-8")
        doc = {"name": name, "version": version, "entry_point": f"{module}:{class_name}",
               "supported_pids": ["P1"], "description": "test algorithm"}
        doc.update(manifest or {})
        (package_dir / "manifest.json").write_text(json.dumps(doc), encoding="utf-8")
        (version_dir / "venv").symlink_to(venv, target_is_directory=True)
        return Deployed(name, version, version_dir, package_dir, version_dir / "venv" / "bin" / "python")


@pytest.fixture
def deployer(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployer]:
    """A Deployer rooted in this test's tmp_path; venvs shared by the whole session (all xdist workers)."""
    # getbasetemp().parent is shared by every xdist worker of the run; the file lock serialises builds.
    shared = tmp_path_factory.getbasetemp().parent / "pv-deploy-venvs"
    yield Deployer(tmp_path / "root", shared)
