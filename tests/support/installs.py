"""A real installer on a fresh root, and the check that an install was refused at its first stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.package.installer import Installer
from runner.store.registry import Registry
from tests.support.packages import root_is_clean


def installer_at(tmp_path: Path) -> Installer:
    """An installer on ``tmp_path/root`` with default settings."""
    settings = Settings(root=tmp_path / "root")
    return Installer(settings, Registry(settings.layout))


def refused_at_check(tmp_path: Path, path: Path) -> RunnerError:
    """Install ``path`` and return the RunnerError it must raise during the "checking" stage, before
    extraction and before any venv, leaving the root clean."""
    installer = installer_at(tmp_path)
    stages: list[str] = []
    with pytest.raises(RunnerError) as caught:
        installer.install(path, progress=stages.append)
    assert stages == ["checking"], "decided before extraction and before any venv"
    assert root_is_clean(installer.layout.root) == []
    return caught.value
