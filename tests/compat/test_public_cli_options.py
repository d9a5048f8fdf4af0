"""Every option of the public procvision-cli (0.0.7 and 0.3.2, read from their cached wheels) exists
on ours, and the ones we deliberately do not support are refused with a reason."""

from __future__ import annotations

import argparse
import io
import re
import zipfile
from pathlib import Path

import pytest

from procvision_algorithm_sdk.cli.main import build_parser, main
from tests.support import wheels as wheel_cache
from tests.support.public_packages import EXECUTE_ONLY_SDK, PHASE_SDK

#: The public cli's subparser variables and the commands they build.
_COMMANDS = {"v": "validate", "r": "run", "p": "package", "i": "init"}
_OPTION = re.compile(r'\b([vrpi])\.add_argument\(\s*((?:"[^"]+"\s*,\s*)+)')


def public_options(version: str) -> dict[str, set[str]]:
    """{command: option strings} of the public cli.py in the cached wheel of ``version``."""
    wheel_cache.ensure()
    wheel = next((wheel_cache.PUBLIC_SDK / version).glob(f"procvision_algorithm_sdk-{version}-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read("procvision_algorithm_sdk/cli.py").decode("utf-8")
    found: dict[str, set[str]] = {name: set() for name in _COMMANDS.values()}
    for var, args in _OPTION.findall(source):
        for opt in re.findall(r'"([^"]+)"', args):
            if opt.startswith("-"):
                found[_COMMANDS[var]].add(opt)
    return found


def our_options() -> dict[str, set[str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: set(p._option_string_actions) for name, p in sub.choices.items()}


@pytest.mark.parametrize("version", [PHASE_SDK, EXECUTE_ONLY_SDK])
def test_every_public_option_is_accepted(version: str) -> None:
    public = public_options(version)
    assert sum(len(v) for v in public.values()) > 20, public  # the parse found the options
    ours = our_options()
    missing = {cmd: sorted(opts - ours[cmd]) for cmd, opts in public.items() if opts - ours[cmd]}
    assert not missing, f"public procvision-cli {version} options we lack: {missing}"


def test_runtime_embedding_is_refused_with_a_reason(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "example-algorithm"
    err = io.StringIO()
    code = main(["package", str(example), "-o", str(tmp_path), "--embed-python", "--python-runtime", "C:/py"],
                out=io.StringIO(), err=err)
    assert code == 2 and "not supported" in err.getvalue() and "interpreter installed on the station" in err.getvalue()
