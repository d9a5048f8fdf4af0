"""Requirement lines an offline install cannot honour are refused with 2004 naming the line (they were
silently ignored), and ``--hash`` pins are checked against the bundled wheels."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from runner.errors import RunnerError
from runner.package import wheels
from tests.support.installs import installer_at, refused_at_check
from tests.support.packages import build_package, make_wheel, runtime_wheels

BASE = "procvision-algorithm-sdk\nnumpy\n"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- option lines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("line", [
    "--index-url https://pypi.org/simple", "-i https://pypi.org/simple", "--extra-index-url=https://x.invalid/s",
    "--trusted-host example.invalid", "--pre", "--require-hashes", "--no-binary=:all:",
])
def test_options_the_install_would_not_honour_are_2004(line: str) -> None:
    with pytest.raises(RunnerError) as caught:
        wheels.parse_requirements(f"numpy\n\n{line}\n", "algo/requirements.sanitized.txt")
    err = caught.value
    assert err.code == "2004" and err.details["problem"] == "option_not_allowed"
    assert err.details["line"] == 3 and err.details["file"] == "algo/requirements.sanitized.txt"
    assert err.message.startswith(f"algo/requirements.sanitized.txt line 3: {line!r}: option ")


def test_index_url_line_fails_the_install(tmp_path: Path) -> None:
    path = build_package(tmp_path / "src", requirements=f"--index-url https://pypi.org/simple\n{BASE}")
    err = refused_at_check(tmp_path, path)
    assert err.code == "2004" and err.details["line"] == 1 and "'--index-url'" in err.message


@pytest.mark.parametrize("line", ["--no-index", "--find-links wheels", "-f ./wheels", "-fwheels",
                                  "--only-binary=:all:", "--prefer-binary"])
def test_offline_harmless_options_are_ignored(line: str) -> None:
    reqs = wheels.parse_requirements(f"{line}\nnumpy==2.0\n", "requirements.txt")
    assert [str(r) for r in reqs] == ["numpy==2.0"]


# --- name @ URL ---------------------------------------------------------------------------------------


def test_url_requirement_is_refused_even_when_a_wheel_of_that_name_is_bundled(tmp_path: Path) -> None:
    foo = make_wheel(tmp_path / "w", "foo", "1.0")
    path = build_package(tmp_path / "src", wheels=[*runtime_wheels(), foo],
                         requirements=f"{BASE}foo @ https://example.invalid/{foo.name}\n")
    err = refused_at_check(tmp_path, path)
    assert err.code == "2004" and err.details["problem"] == "not_offline" and err.details["line"] == 3
    assert "cannot be installed offline" in err.message


def test_file_url_pins_exactly_that_bundled_wheel(tmp_path: Path) -> None:
    one, two = make_wheel(tmp_path / "w", "foo", "1.0"), make_wheel(tmp_path / "w", "foo", "2.0")
    installer = installer_at(tmp_path)
    ok = build_package(tmp_path / "ok", wheels=[*runtime_wheels(), one, two],
                       requirements=f"{BASE}foo @ file:///home/dev/dist/{one.name}\n")
    report = installer.validate(ok)
    assert report["summary"]["status"] == "PASS", report
    assert "foo==1.0" in report["checks"][-1]["message"], "the pinned file, not the newest foo"
    missing = build_package(tmp_path / "missing", wheels=[*runtime_wheels(), two],
                            requirements=f"{BASE}foo @ file:///home/dev/dist/{one.name}\n")
    err = refused_at_check(tmp_path, missing)
    assert err.code == "2004" and err.details["problem"] == "not_offline"


# --- --hash ---------------------------------------------------------------------------------------


def test_wrong_pinned_hash_fails_the_install_with_2004(tmp_path: Path) -> None:
    numpy = runtime_wheels()[0]
    wrong = hashlib.sha256(b"another wheel").hexdigest()
    path = build_package(tmp_path / "src", requirements=f"procvision-algorithm-sdk\nnumpy --hash=sha256:{wrong}\n")
    err = refused_at_check(tmp_path, path)
    assert err.code == "2004" and err.details["problem"] == "hash_mismatch"
    assert err.details["line"] == 2 and err.details["wheel"] == numpy.name
    assert err.details["expected"] == [f"sha256:{wrong}"] and _sha256(numpy) in err.details["actual"]
    assert err.message.startswith("requirements.txt line 2: wheels/")
    report = installer_at(tmp_path).validate(path)
    assert report["summary"]["status"] == "FAIL" and report["error"]["details"]["problem"] == "hash_mismatch"


def test_matching_hash_passes_including_pip_compile_continuations(tmp_path: Path) -> None:
    numpy = runtime_wheels()[0]
    sha512 = hashlib.sha512(numpy.read_bytes()).hexdigest()
    requirements = ("procvision-algorithm-sdk\n"
                    "numpy \\\n"
                    f"    --hash=sha256:{'0' * 64} \\\n"
                    f"    --hash=sha512:{sha512.upper()}\n")
    path = build_package(tmp_path / "src", requirements=requirements)
    report = installer_at(tmp_path).validate(path)
    assert report["summary"]["status"] == "PASS", report


def test_hash_of_a_line_excluded_by_its_marker_is_not_checked() -> None:
    reqs = wheels.parse_requirements(f"foo ; sys_platform == 'nonexistent' --hash=sha256:{'1' * 64}\n",
                                     "requirements.txt")
    wheels.check_hashes(reqs, wheels.Resolution(), lambda wheel, algorithm: pytest.fail("not read"))


@pytest.mark.parametrize("value", ["md5:0123abcd", "sha256", "sha256:xyz", ""])
def test_malformed_hash_is_2004(value: str) -> None:
    with pytest.raises(RunnerError) as caught:
        wheels.parse_requirements(f"numpy==2.0 --hash={value}\n", "requirements.txt")
    assert caught.value.code == "2004" and caught.value.details["problem"] == "invalid_hash"
