"""The CLIs import only what a command uses: client commands never load the web stack, pydantic or numpy.

What is imported is checked (``-X importtime`` lists every module), never how long it took: speed is
measured by benchmarks/cli_startup.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Modules that cost most of a second to import and that no client command needs.
HEAVY = ("fastapi", "starlette", "uvicorn", "pydantic", "pydantic_settings", "httpx", "numpy", "PIL")
#: A port nothing listens on: the command runs its whole import path, then fails to connect (exit 3).
NOWHERE = "http://127.0.0.1:9"


def imported(*argv: str) -> tuple[int, set[str]]:
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, timeout=120,
                          check=False, env={"PATH": "/usr/bin:/bin"})
    names = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc.returncode, names


def heavy_in(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in HEAVY)


@pytest.mark.parametrize("command", [
    ["--version"],
    ["--help"],
    ["--url", NOWHERE, "list"],
    ["--url", NOWHERE, "status"],
    ["--url", NOWHERE, "active"],
    ["--url", NOWHERE, "activate", "algo", "1.0.0", "--pid", "A01"],
    ["--url", NOWHERE, "switch", "algo", "1.0.0", "--pid", "A01"],
    ["--url", NOWHERE, "install", __file__],
])
def test_runner_client_commands_skip_the_heavy_modules(command: list[str]) -> None:
    code, names = imported("-m", "runner.cli.main", *command)
    assert "runner.cli.commands.serve" in names
    if "--url" in command:
        assert "runner.cli.client" in names
    else:  # nothing to send: not even the standard library's HTTP client
        assert "http.client" not in names and "runner.cli.endpoint" not in names
    assert code in (0, 3), code  # 3: the daemon is unreachable, after the whole import path ran
    assert heavy_in(names) == []


def test_serve_still_loads_the_daemon() -> None:
    # The other side of the coin: the lazy imports are really reached when a command needs them.
    code, names = imported("-c", "import runner.cli.commands.serve as s; import runner.daemon")
    assert code == 0 and "fastapi" in names and "uvicorn" in names


@pytest.mark.parametrize("command", [["--help"], ["--version"], ["validate", "--help"], ["package", "--help"]])
def test_sdk_cli_help_skips_numpy(command: list[str]) -> None:
    code, names = imported("-m", "procvision_algorithm_sdk.cli.main", *command)
    assert code == 0
    # cli.main loads every command module (through importlib, which -X importtime does not list):
    # a help that printed means they were all loaded, and none of them pulled in numpy.
    assert "procvision_algorithm_sdk.cli.main" in names and "procvision_algorithm_sdk.cli.project" in names
    assert heavy_in(names) == []


def test_sdk_package_still_exports_the_shared_memory_helpers() -> None:
    code, names = imported("-c", "from procvision_algorithm_sdk import read_image_from_shared_memory as r; "
                                 "import procvision_algorithm_sdk as p; "
                                 "assert callable(p.write_image_array_to_shared_memory)")
    assert code == 0 and "numpy" in names
