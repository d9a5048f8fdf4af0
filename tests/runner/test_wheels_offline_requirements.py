"""Requirements lines that cannot be installed offline, or cannot be parsed, get precise 2004 messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import RunnerError
from runner.package import wheels
from tests.support.installs import installer_at, refused_at_check
from tests.support.packages import build_package, make_wheel


def test_url_requirement_without_bundled_wheel_says_offline(tmp_path: Path) -> None:
    path = build_package(tmp_path / "src", requirements=(
        "procvision-algorithm-sdk\nnumpy\nfoo @ https://example.invalid/foo-1.0-py3-none-any.whl\n"))
    err = refused_at_check(tmp_path, path)
    assert err.code == "2004" and err.details["problem"] == "not_offline"
    assert "cannot be installed offline: bundle a wheel for foo" in err.message
    assert "foo==<version>" in err.message and "requirements.txt line 3" in err.message
    assert "has no wheel" not in err.message


def test_url_requirement_with_bundled_wheel_is_checked_by_name(tmp_path: Path) -> None:
    """``pip freeze`` writes ``name @ file:///...`` for local wheels: fine when the wheel is bundled."""
    foo = make_wheel(tmp_path / "w", "foo", "1.0")
    reqs = wheels.parse_requirements(f"foo @ file://{foo}\n", "requirements.txt")
    assert [str(r) for r in reqs] == ["foo"]
    found = wheels.parse_wheel_names([foo.name])
    finder_target = installer_at(tmp_path).finder.choose(None, None)
    resolution = wheels.resolve(reqs, found, finder_target, lambda w: _metadata(foo))
    assert resolution.pins() == ["foo==1.0"]


def _metadata(wheel: Path) -> bytes:
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        return wheels.read_wheel_metadata(zf, wheel.name)


def test_unparsable_line_names_file_line_and_parse_error(tmp_path: Path) -> None:
    path = build_package(tmp_path / "src", requirements="procvision-algorithm-sdk\n\nnumpy>=\n")
    err = refused_at_check(tmp_path, path)
    assert err.code == "2004" and err.details["problem"] == "invalid_requirement"
    assert err.details["line"] == 3 and err.details["file"] == "requirements.txt"
    assert err.message.startswith("requirements.txt line 3: 'numpy>=' is not a valid requirement (")
    assert "PEP 508" in err.message and err.details["parse_error"]


@pytest.mark.parametrize(("line", "kind", "name"), [
    ("-e ./local/mypkg", "editable", "mypkg"),
    ("--editable=git+https://github.com/org/tool.git@v1#egg=tool", "editable", "tool"),
    ("git+https://github.com/org/repo.git@v2", "URL", "repo"),
    ("./vendor/bar-2.0-py3-none-any.whl", "local path", "bar"),
    ("/opt/src/baz", "local path", "baz"),
])
def test_editable_vcs_and_path_lines_say_offline(line: str, kind: str, name: str) -> None:
    with pytest.raises(RunnerError) as caught:
        wheels.parse_requirements(f"numpy\n{line}\n", "algo/requirements.sanitized.txt")
    err = caught.value
    assert err.code == "2004" and err.details["line"] == 2 and err.details["problem"] == "not_offline"
    assert err.message.startswith("algo/requirements.sanitized.txt line 2: ")
    assert kind in err.message
    assert f"cannot be installed offline: bundle a wheel for {name} in wheels/" in err.message
    assert f"({name}==<version>) in algo/requirements.sanitized.txt" in err.message


def test_included_files_are_refused_with_the_line() -> None:
    with pytest.raises(RunnerError) as caught:
        wheels.parse_requirements("# deps\n-r other.txt\n", "requirements.txt")
    assert caught.value.code == "2004" and caught.value.details["line"] == 2
    assert "refers to another file" in caught.value.message


def test_missing_wheel_names_the_requirements_line(tmp_path: Path) -> None:
    path = build_package(tmp_path / "src", requirements="procvision-algorithm-sdk\nnumpy\nscipy>=1.0\n")
    err = refused_at_check(tmp_path, path)
    assert err.code == "2004" and err.details["requirement"] == "scipy>=1.0"
    assert "has no wheel" in err.message and "requirements.txt line 3" in err.message
