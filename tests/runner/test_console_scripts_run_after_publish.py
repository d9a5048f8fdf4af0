"""Console scripts of a deployed venv run: the installer wrote them naming an interpreter path that
publishing (a rename out of staging) or uv's ``--prefix`` install would leave wrong, and
``relocate_scripts`` points them at the ``python`` beside them, with their RECORD entries updated.
Files that name another interpreter, links and the venv's own files are left alone."""

from __future__ import annotations

import base64
import csv
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from procvision_algorithm_sdk import __version__ as SDK_VERSION
from runner.config import Settings
from runner.package.installer import Installer
from runner.package.venvtools.scripts import LAUNCHER, relocate_scripts
from runner.store.registry import Registry
from tests.support.packages import build_package, manifest_for

TIMEOUT_S = 120


def _record_rows(venv: Path, script: Path) -> list[list[str]]:
    rows = []
    for record in venv.glob("lib/python*/site-packages/*.dist-info/RECORD"):
        site = record.parent.parent
        with open(record, newline="", encoding="utf-8") as handle:
            rows += [row for row in csv.reader(handle) if row and (site / row[0]).resolve() == script.resolve()]
    return rows


def _sha(content: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()


@pytest.mark.parametrize("tool", ["uv", "pip"])
def test_a_deployed_venvs_console_script_runs_from_where_it_was_published(tmp_path: Path, tool: str) -> None:
    settings = Settings(root=tmp_path / "root")
    installer = Installer(settings, Registry(settings.layout), **({"locate_uv": lambda: None} if tool == "pip" else {}))
    result = installer.install(build_package(tmp_path / "pkg", manifest=manifest_for(version="1.0.0")))
    try:
        venv = result.version_dir / "venv"
        script = venv / "bin" / "procvision-cli"
        assert script.read_bytes().startswith(LAUNCHER)
        done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=TIMEOUT_S,
                              check=False)
        assert done.returncode == 0, done.stderr
        assert SDK_VERSION in done.stdout + done.stderr
        [row] = _record_rows(venv, script)
        content = script.read_bytes()
        assert row[1:] == [_sha(content), str(len(content))]
    finally:
        installer.close()


#: The interpreter the scripts of the unit tests below name (it need not exist).
INTERPRETER = "/nowhere/bin/python3"


def _venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    return venv


def _script(venv: Path, name: str, code: str) -> Path:
    """An executable ``bin/<name>`` that ``INTERPRETER`` is to run."""
    script = venv / "bin" / name
    script.write_text(f"#!{INTERPRETER}\n{code}", encoding="utf-8")
    script.chmod(0o755)
    return script


def test_the_launcher_runs_the_python_beside_it_after_the_venv_moved(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    script = _script(venv, "hello", "import sys\nprint('hello from', sys.executable)\n")
    assert relocate_scripts(venv, INTERPRETER) == [script]
    moved = tmp_path / "elsewhere"
    shutil.move(str(venv), moved)
    done = subprocess.run([str(moved / "bin" / "hello")], capture_output=True, text=True, timeout=TIMEOUT_S,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"hello from {moved / 'bin' / 'python'}"
    assert (moved / "bin" / "hello").stat().st_mode & 0o777 == 0o755


def test_files_that_do_not_name_the_interpreter_are_left_alone(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    others = {
        "other": "#!/usr/bin/python3\nprint(1)\n",
        "with-args": f"#!{INTERPRETER} -E\nprint(1)\n",
        "activate": "# This file must be used with 'source bin/activate'\n",
        "empty": "",
    }
    for name, text in others.items():
        (venv / "bin" / name).write_text(text, encoding="utf-8")
    (venv / "bin" / "link").symlink_to(venv / "bin" / "other")
    assert relocate_scripts(venv, INTERPRETER) == []
    for name, text in others.items():
        assert (venv / "bin" / name).read_text(encoding="utf-8") == text
    assert (venv / "bin" / "python").is_symlink()


@pytest.mark.parametrize("quote", ["", "'", '"'])
def test_a_script_launched_through_sh_for_a_long_path_is_relocated(tmp_path: Path, quote: str) -> None:
    venv = _venv(tmp_path)
    interpreter = "/a folder with spaces/" + "x" * 140 + "/bin/python"
    script = venv / "bin" / "long"
    script.write_text(f"#!/bin/sh\n'''exec' {quote}{interpreter}{quote} \"$0\" \"$@\"\n' '''\nprint('long ok')\n",
                      encoding="utf-8")
    script.chmod(0o755)
    assert relocate_scripts(venv, interpreter) == [script]
    assert script.read_bytes() == LAUNCHER + b"print('long ok')\n"
    done = subprocess.run([str(script)], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "long ok"), done.stderr


def test_a_script_run_through_a_link_elsewhere_runs_its_own_venv(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    script = _script(venv, "tool", "import sys\nprint(sys.executable)\n")
    relocate_scripts(venv, INTERPRETER)
    link = tmp_path / "on-path" / "tool"
    link.parent.mkdir()
    link.symlink_to(script)
    done = subprocess.run([str(link)], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, str(venv / "bin" / "python")), done.stderr


def test_a_script_declaring_another_encoding_keeps_its_launch_line(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    script = venv / "bin" / "latin"
    original = f"#!{INTERPRETER}\n# -*- coding: latin-1 -*-\nprint('caf\xe9')\n".encode("latin-1")
    script.write_bytes(original)
    assert relocate_scripts(venv, INTERPRETER) == []
    assert script.read_bytes() == original


def test_record_rows_ending_in_crlf_are_updated_in_place(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    script = _script(venv, "crlf-tool", "print(1)\n")
    site = venv / "lib" / "python3.11" / "site-packages"
    record = site / "demo-1.0.dist-info" / "RECORD"
    record.parent.mkdir(parents=True)
    record.write_bytes(b'demo/__init__.py,sha256=abc,3\r\n../../../bin/crlf-tool,sha256=old,20\r\n"a,b.py",,\r\n')
    relocate_scripts(venv, INTERPRETER)
    content = script.read_bytes()
    assert record.read_bytes() == (b'demo/__init__.py,sha256=abc,3\r\n../../../bin/crlf-tool,'
                                   + _sha(content).encode() + b"," + str(len(content)).encode()
                                   + b'\r\n"a,b.py",,\r\n')
