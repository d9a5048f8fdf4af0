"""Checks 2 and 3: layout, manifest, interpreter and wheels, decided before any venv exists."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from runner.config import Settings
from runner.errors import RunnerError
from runner.package import layout, wheels
from runner.package.installer import Installer
from runner.package.interpreters import InterpreterFinder
from runner.store.registry import Registry
from tests.support.packages import (
    algorithm_files,
    build_package,
    hostile_zip,
    make_wheel,
    manifest_for,
    root_is_clean,
    runtime_wheels,
    valid_entries,
)


def _installer(tmp_path: Path, **overrides: Any) -> Installer:
    settings = Settings(root=tmp_path / "root", **overrides)
    return Installer(settings, Registry(settings.layout))


def _fails_before_venv(installer: Installer, path: Path, code: str) -> RunnerError:
    stages: list[str] = []
    with pytest.raises(RunnerError) as caught:
        installer.install(path, progress=stages.append)
    assert caught.value.code == code, caught.value
    assert stages == ["checking"], "decided before extraction and before any venv"
    assert root_is_clean(installer.layout.root) == []
    return caught.value


# --- layout and manifest (2002) ---------------------------------------------------------------------


def test_layouts_are_located() -> None:
    flat = layout.locate(["manifest.json", "algo/main.py", "wheels/a-1-py3-none-any.whl", "requirements.txt"])
    assert (flat.package_dir, flat.wheels_dir, flat.requirements) == ("", "wheels", "requirements.txt")
    public = layout.locate(["proj/manifest.json", "proj/requirements.txt", "proj/requirements.sanitized.txt",
                            "proj/.procvision_env.json", "wheels/a-1-py3-none-any.whl"])
    assert public.package_dir == "proj" and public.wheels_dir == "wheels"
    assert public.requirements == "proj/requirements.sanitized.txt"
    assert public.env_file == "proj/.procvision_env.json"
    nested = layout.locate(["p/manifest.json", "p/wheels/a-1-py3-none-any.whl"])
    assert nested.wheels_dir == "p/wheels" and nested.wheels == ("p/wheels/a-1-py3-none-any.whl",)


def test_missing_manifest_is_2002(tmp_path: Path) -> None:
    path = hostile_zip(tmp_path / "p.zip", [("algo/main.py", b"x"), ("deep/er/manifest.json", b"{}")])
    err = _fails_before_venv(_installer(tmp_path), path, "2002")
    assert "manifest.json" in err.message


def test_two_manifests_is_2002(tmp_path: Path) -> None:
    path = hostile_zip(tmp_path / "p.zip", [("a/manifest.json", b"{}"), ("b/manifest.json", b"{}")])
    err = _fails_before_venv(_installer(tmp_path), path, "2002")
    assert err.details["folders"] == ["a", "b"]


@pytest.mark.parametrize(("manifest", "field"), [
    ({"version": "1.0", "entry_point": "a:B", "supported_pids": ["P"]}, "name"),
    ({"name": "x", "version": "1.0", "entry_point": "not an entry", "supported_pids": ["P"]}, "entry_point"),
    ({"name": "x", "version": "1.0", "entry_point": "a:B", "supported_pids": []}, "supported_pids"),
    ({"name": "x", "version": "1.0", "entry_point": "a:B", "supported_pids": ["../P"]}, "supported_pids[0]"),
])
def test_invalid_manifest_names_the_field(tmp_path: Path, manifest: dict[str, Any], field: str) -> None:
    path = hostile_zip(tmp_path / "p.zip", [("manifest.json", json.dumps(manifest).encode())])
    err = _fails_before_venv(_installer(tmp_path), path, "2002")
    assert err.details["field"] == field and field in err.message


def test_manifest_not_json_is_2002(tmp_path: Path) -> None:
    path = hostile_zip(tmp_path / "p.zip", [("manifest.json", b"{not json")])
    _fails_before_venv(_installer(tmp_path), path, "2002")


def test_name_and_version_come_from_the_manifest(tmp_path: Path) -> None:
    path = build_package(tmp_path / "src", manifest=manifest_for("real_name", "2.0.0"), zip_name="other-v9.zip",
                         wheels=[], with_sdk=False, requirements="")
    report = _installer(tmp_path).validate(path)
    assert (report["name"], report["version"]) == ("real_name", "2.0.0")


# --- wheels (2004) and interpreter (2003) -------------------------------------------------------------


def test_no_wheels_folder_is_2004(tmp_path: Path) -> None:
    path = hostile_zip(tmp_path / "p.zip", valid_entries())
    err = _fails_before_venv(_installer(tmp_path), path, "2004")
    assert "wheels/" in err.message


def test_requirement_without_wheel_is_2004(tmp_path: Path) -> None:
    path = build_package(tmp_path / "src", requirements="procvision-algorithm-sdk\nnumpy\nscipy>=1.0\n")
    err = _fails_before_venv(_installer(tmp_path), path, "2004")
    assert err.details["requirement"] == "scipy>=1.0" and "scipy" in err.message


def test_dependency_closure_is_checked(tmp_path: Path) -> None:
    """The SDK wheel needs numpy (Requires-Dist): without a numpy wheel it is 2004 naming numpy."""
    path = build_package(tmp_path / "src", wheels=[], requirements="procvision-algorithm-sdk\n")
    err = _fails_before_venv(_installer(tmp_path), path, "2004")
    assert err.details["requirement"].startswith("numpy")
    assert "procvision-algorithm-sdk" in err.details["required_by"]


def test_markers_are_evaluated_for_the_target(tmp_path: Path) -> None:
    extra = make_wheel(tmp_path / "w", "helper", "1.0",
                       requires=['winonly>=1; sys_platform == "win32"', 'oldonly; python_version < "3.0"',
                                 'optional-thing; extra == "fancy"'])
    path = build_package(tmp_path / "src", wheels=[*runtime_wheels(), extra],
                         requirements="procvision-algorithm-sdk\nnumpy\nhelper\n")
    report = _installer(tmp_path).validate(path)
    assert report["summary"]["status"] == "PASS", report
    wanted = make_wheel(tmp_path / "w2", "helper2", "1.0", requires=['needed; sys_platform == "linux"'])
    path = build_package(tmp_path / "src2", wheels=[*runtime_wheels(), wanted],
                         requirements="procvision-algorithm-sdk\nnumpy\nhelper2\n")
    err = _fails_before_venv(_installer(tmp_path / "b"), path, "2004")
    assert err.details["requirement"].startswith("needed")


def test_extras_pull_in_their_dependencies(tmp_path: Path) -> None:
    base = make_wheel(tmp_path / "w", "withextra", "1.0", requires=['addon; extra == "fancy"'])
    path = build_package(tmp_path / "src", wheels=[*runtime_wheels(), base],
                         requirements="procvision-algorithm-sdk\nnumpy\nwithextra[fancy]\n")
    err = _fails_before_venv(_installer(tmp_path), path, "2004")
    assert err.details["requirement"] == "addon; extra == \"fancy\""


def test_wrong_version_is_2004(tmp_path: Path) -> None:
    path = build_package(tmp_path / "src", requirements="procvision-algorithm-sdk\nnumpy==1.0.0\n")
    err = _fails_before_venv(_installer(tmp_path), path, "2004")
    assert err.details["available"]


def test_wheel_for_wrong_python_is_2003(tmp_path: Path) -> None:
    fake = tmp_path / "w" / "foo-1.0-cp27-cp27mu-manylinux1_x86_64.whl"
    fake.parent.mkdir()
    fake.write_bytes(b"only the name matters: decided before any venv")
    path = build_package(tmp_path / "src", wheels=[*runtime_wheels(), fake],
                         requirements="procvision-algorithm-sdk\nnumpy\nfoo\n")
    err = _fails_before_venv(_installer(tmp_path), path, "2003")
    assert err.details["wheels"] == [fake.name]
    assert fake.name in err.message and sys.version.split()[0] in err.message


def test_requires_python_of_the_wheels_is_honoured(tmp_path: Path) -> None:
    old = make_wheel(tmp_path / "w", "picky", "1.0", requires_python=">=3.0")
    new = make_wheel(tmp_path / "w", "picky", "2.0", requires_python=">=3.99")
    path = build_package(tmp_path / "src", wheels=[*runtime_wheels(), old, new],
                         requirements="procvision-algorithm-sdk\nnumpy\npicky\n")
    report = _installer(tmp_path).validate(path)
    assert "picky==1.0" in report["checks"][-1]["message"], "the newest wheel the interpreter can use"
    path = build_package(tmp_path / "src2", wheels=[*runtime_wheels(), new],
                         requirements="procvision-algorithm-sdk\nnumpy\npicky\n")
    err = _fails_before_venv(_installer(tmp_path / "b"), path, "2003")
    assert new.name in err.message and "Requires-Python" in err.message


def test_invalid_wheel_name_is_2004(tmp_path: Path) -> None:
    bad = tmp_path / "w" / "not-a-wheel.whl"
    bad.parent.mkdir()
    bad.write_bytes(b"x")
    path = build_package(tmp_path / "src", wheels=[*runtime_wheels(), bad])
    err = _fails_before_venv(_installer(tmp_path), path, "2004")
    assert err.details["wheel"] == "not-a-wheel.whl"


def test_no_interpreter_for_python_requires_is_2003(tmp_path: Path) -> None:
    path = build_package(tmp_path / "src", manifest=manifest_for(python_requires="==2.5.*"))
    err = _fails_before_venv(_installer(tmp_path), path, "2003")
    assert "2.5" in err.message and err.details["found"], "the message lists the interpreters found"


def test_configured_interpreter_must_run(tmp_path: Path) -> None:
    path = build_package(tmp_path / "src")
    err = _fails_before_venv(_installer(tmp_path, python=str(tmp_path / "nope")), path, "2003")
    assert "nope" in err.message


def test_requirements_parsing() -> None:
    reqs = wheels.parse_requirements("# c\n--find-links x\nnumpy==2.0 --hash=sha256:abc\n"
                                     "pkg @ file:///tmp/pkg-1.0-py3-none-any.whl\n\nfoo[bar]>=1 ; python_version>'3'\n",
                                     "requirements.txt")
    assert [str(r) for r in reqs] == ["numpy==2.0", "pkg", 'foo[bar]>=1; python_version > "3"']
    with pytest.raises(RunnerError) as caught:
        wheels.parse_requirements("-e ./local\n", "requirements.txt")
    assert caught.value.code == "2004"


def test_resolution_picks_the_newest_fitting_wheel(tmp_path: Path) -> None:
    target = InterpreterFinder().choose()
    names = ["a-1.0-py3-none-any.whl", "a-2.0-py3-none-any.whl", "a-3.0-cp27-cp27mu-manylinux1_x86_64.whl"]
    files = wheels.parse_wheel_names(names)
    resolution = wheels.resolve([Requirement("a")], files, target, lambda w: b"Metadata-Version: 2.1\nName: a\n")
    assert resolution.pins() == ["a==2.0"]


# --- validate() report ------------------------------------------------------------------------------


def test_validate_report_shape(tmp_path: Path) -> None:
    good = build_package(tmp_path / "good", layout="public")
    report = _installer(tmp_path).validate(good)
    assert report["summary"] == {"status": "PASS", "passed": 5, "failed": 0}
    assert [c["name"] for c in report["checks"]] == ["zip_safety", "layout", "manifest", "python", "wheels"]
    bad = build_package(tmp_path / "bad", files=algorithm_files(manifest_for()), wheels=[])
    report = _installer(tmp_path).validate(bad)
    assert report["summary"]["status"] == "FAIL" and report["summary"]["failed"] == 1
    assert report["checks"][-1]["name"] == "wheels" and report["checks"][-1]["code"] == "2004"
    assert not (tmp_path / "root" / "deployed").exists() or not any((tmp_path / "root" / "deployed").iterdir())
