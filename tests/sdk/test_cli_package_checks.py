"""``procvision-cli package`` checks: sources must compile, the manifest must parse, and the
download progress line names each requirement once."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest

from procvision_algorithm_sdk.cli.main import main
from procvision_algorithm_sdk.cli.package import merge_requirements
from tests.support import wheels as wheel_cache

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example-algorithm"


@pytest.fixture(scope="module")
def cache() -> Path:
    return wheel_cache.ensure()


def _project(dest: Path) -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "dist"))
    return dest


def _package(project: Path, out: Path, cache: Path) -> tuple[int, str, str]:
    o, e = io.StringIO(), io.StringIO()
    code = main(["package", str(project), "-o", str(out), "--offline", "--wheels-from", str(cache),
                 "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"], out=o, err=e)
    return code, o.getvalue(), e.getvalue()


def test_syntax_error_fails_packaging_naming_file_and_line(tmp_path: Path, cache: Path) -> None:
    project = _project(tmp_path / "proj")
    algorithm = project / "defect_detector" / "algorithm.py"
    lines = algorithm.read_text(encoding="utf-8").splitlines()
    lines.append("def broken(:")
    algorithm.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (project / "defect_detector" / "helper.py").write_text("x = (1,\n", encoding="utf-8")
    code, out, err = _package(project, tmp_path / "out", cache)
    assert code == 1 and out == ""
    assert f"defect_detector/algorithm.py:{len(lines)}: SyntaxError" in err and "def broken(:" in err
    assert "defect_detector/helper.py:1: SyntaxError" in err
    assert "downloading wheels" not in err, "checked before anything is downloaded"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.zip"))


def test_unparsable_manifest_fails_before_packaging(tmp_path: Path, cache: Path) -> None:
    project = _project(tmp_path / "proj")
    (project / "manifest.json").write_text('{"name": "x", ', encoding="utf-8")
    code, _out, err = _package(project, tmp_path / "out", cache)
    assert code == 1 and err.startswith("error: ") and "manifest" in err.lower()
    assert "downloading wheels" not in err


def test_progress_names_each_requirement_once(tmp_path: Path, cache: Path) -> None:
    project = _project(tmp_path / "proj")
    (project / "requirements.txt").write_text("numpy\nNumPy>=1.21\n", encoding="utf-8")
    code, out, err = _package(project, tmp_path / "out", cache)
    assert code == 0, err
    progress = next(line for line in err.splitlines() if line.startswith("downloading wheels"))
    assert progress.endswith(": numpy>=1.21"), progress
    with zipfile.ZipFile(out.strip()) as zf:
        assert any(n.startswith("wheels/numpy-") for n in zf.namelist())


def test_merge_requirements_keeps_markers_and_urls_once() -> None:
    merged = merge_requirements(["numpy", "numpy>=1.21", "Pillow[a]<11", "pillow[b]>=9",
                                 'pywin32; sys_platform == "win32"', 'pywin32; sys_platform == "win32"',
                                 "foo @ https://example.invalid/foo.whl", "bad>="])
    assert merged[0] == "numpy>=1.21"
    assert merged[1].startswith("Pillow[a,b]") and set(merged[1].split("]", 1)[1].split(",")) == {"<11", ">=9"}
    assert merged[2] == 'pywin32; sys_platform == "win32"' and merged[4] == "bad>="
    assert merged[3].replace(" ", "") == "foo@https://example.invalid/foo.whl" and len(merged) == 5
