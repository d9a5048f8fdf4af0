"""A broken manifest or .procvision_env.json is 2002 naming the file, found before anything is
extracted: deeply nested JSON and manifest values with a trailing newline included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.package.installer import Installer
from runner.store.registry import Registry
from tests.support.packages import algorithm_files, build_package, manifest_for, root_is_clean

DEEP = b"[" * 100_000 + b"]" * 100_000


def _install_error(tmp_path: Path, path: Path) -> RunnerError:
    settings = Settings(root=tmp_path / "root")
    installer = Installer(settings, Registry(settings.layout))
    stages: list[str] = []
    with pytest.raises(RunnerError) as caught:
        installer.install(path, progress=stages.append)
    assert stages == ["checking"], "decided before extraction"
    assert root_is_clean(settings.layout.root) == []
    assert not (settings.layout.root / "deployed").exists() or not any((settings.layout.root / "deployed").iterdir())
    return caught.value


def test_deeply_nested_manifest_is_2002(tmp_path: Path) -> None:
    manifest = json.dumps(manifest_for(default_config={"x": 0})).encode().replace(b"0}", DEEP + b"}")
    path = build_package(tmp_path / "src", manifest_bytes=manifest, wheels=[], with_sdk=False)
    err = _install_error(tmp_path, path)
    assert err.code == "2002" and err.details["entry"] == "manifest.json"
    assert "nested more than" in err.message


@pytest.mark.parametrize("env", [DEEP, b'{"python_version": ' + DEEP + b"}", b"[1]", b"{"])
def test_broken_env_file_is_2002_naming_it(tmp_path: Path, env: bytes) -> None:
    files: dict[str, str | bytes] = {**algorithm_files(manifest_for()), ".procvision_env.json": env}
    path = build_package(tmp_path / "src", files=files, wheels=[], with_sdk=False)
    err = _install_error(tmp_path, path)
    assert err.code == "2002" and err.details["entry"] == ".procvision_env.json"
    assert err.message.startswith(".procvision_env.json ")


def test_name_with_trailing_newline_is_2002_and_leaves_nothing(tmp_path: Path) -> None:
    path = build_package(tmp_path / "src", manifest=manifest_for(name="m4nl\n"), zip_name="m4nl.zip")
    err = _install_error(tmp_path, path)
    assert err.code == "2002" and err.details["field"] == "name" and err.details["entry"] == "manifest.json"
    assert "'m4nl\\n'" in err.message
