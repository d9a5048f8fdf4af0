"""``VersionRecord``: the registry's JSON objects typed, written back unchanged, and where a version's
files are (package folder, venv interpreter, worker spec) computed in one place."""

from __future__ import annotations

import json
from pathlib import Path

from runner.store.layout import RootLayout
from runner.store.registry import FIELDS, Registry
from runner.store.version_record import VersionRecord

# A registry.json as an earlier runner wrote it: every field, plus fields only the installer adds.
OLD_REGISTRY = {"format": 1, "versions": [{
    "name": "algo", "version": "1.0", "supported_pids": ["P1"], "state": "installed",
    "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z", "zip_sha256": "ab",
    "zip_name": "algo-v1.0-offline.zip", "python": "/usr/bin/python3.11", "python_version": "3.11.2",
    "dialect": "procvision", "sdk_version": "1.0.0", "entry_point": "algo.main:Algo", "package_dir": "algo",
    "last_error": None, "smoke": {"status": "PASS", "steps": []}, "signature": None,
    "venv_python": "/x/venv/bin/python", "installer": "uv", "wheels": {"numpy": "1.26.4"}}]}


def test_an_existing_registry_loads_typed_and_saves_unchanged(tmp_path: Path) -> None:
    layout = RootLayout(tmp_path)
    layout.registry_file.write_text(json.dumps(OLD_REGISTRY))
    registry = Registry(layout)
    record = registry.require("algo", "1.0")
    assert isinstance(record, VersionRecord)
    assert (record.state, record.dialect, record.package_dir, record.supported_pids) == (
        "installed", "procvision", "algo", ["P1"])
    assert record.extra == {"venv_python": "/x/venv/bin/python", "installer": "uv", "wheels": {"numpy": "1.26.4"}}
    registry.update("algo", "1.0", dialect="public-phase")
    saved = json.loads(layout.registry_file.read_text())["versions"][0]
    expected = dict(OLD_REGISTRY["versions"][0], dialect="public-phase", updated_at=saved["updated_at"])
    assert saved == expected and set(FIELDS) <= saved.keys()


def test_record_reads_like_its_json_object() -> None:
    record = VersionRecord.from_dict(OLD_REGISTRY["versions"][0])
    assert record["state"] == "installed" and record["installer"] == "uv" and record.get("missing") is None
    assert dict(record) == record.to_dict() == OLD_REGISTRY["versions"][0]
    assert record.changed(state="stopped", note="x").to_dict() == dict(
        OLD_REGISTRY["versions"][0], state="stopped", note="x")
    assert record.state == "installed"  # changed() copies


def test_paths_and_worker_spec_come_from_the_layout(tmp_path: Path) -> None:
    layout = RootLayout(tmp_path)
    record = VersionRecord.from_dict(OLD_REGISTRY["versions"][0])
    version_dir = tmp_path / "deployed" / "algo" / "1.0"
    assert record.package_folder(layout) == version_dir / "algo"
    assert record.venv_python(layout) == layout.venv_python("algo", "1.0")
    # No venv on disk: the recorded base interpreter is what the spec names (the worker fails clearly).
    spec = record.worker_spec(layout, memory_limit_mb=64)
    assert (spec.python, spec.package_dir, spec.version_dir, spec.entry_point, spec.memory_limit_mb) == (
        Path("/usr/bin/python3.11"), version_dir / "algo", version_dir, "algo.main:Algo", 64)
    record.venv_python(layout).parent.mkdir(parents=True)
    record.venv_python(layout).write_text("")
    assert record.worker_spec(layout).python == record.venv_python(layout)
    bare = VersionRecord(name="algo", version="1.0")
    assert bare.package_folder(layout) == version_dir and bare.worker_spec(layout).entry_point is None
