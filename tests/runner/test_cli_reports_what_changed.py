"""`procvision-runner` says what a command changed, against a real daemon: switch/rollback print one
line per pid, a second rollback undoes the first, versions removed by retain_versions are named,
`uninstall --force` names the pids it left unbound, and list/operation/show/help say the truth."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.cli import exitcodes
from runner.cli.main import main
from tests.api.support import NAME, RunningServer, make_zip, png_bytes, start_server
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # Two versions kept: the third switch prunes the oldest.
    srv = start_server(tmp_path_factory.mktemp("cli-changes") / "root", retain_versions=2)
    yield srv
    srv.stop()


def run(server: RunningServer, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--url", server.url, "--root", str(server.settings.root)], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def run_json(server: RunningServer, *argv: str) -> Any:
    code, out, err = run(server, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_activation_commands_say_what_moved(server: RunningServer, tmp_path: Path) -> None:
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        code, out, err = run(server, "install", str(make_zip(tmp_path / version, version)), "--no-wait")
        assert code == 0, err
        op_id = out.split()[1]
        final = wait_until(lambda op_id=op_id: _finished(server, op_id), 300, f"install of {version}")
        assert final["state"] == "succeeded", final
        code, out, _ = run(server, "operation", op_id)
        assert code == 0 and f"installed: {NAME} {version}" in out, out

    code, out, err = run(server, "activate", NAME, "1.0.0", "--pid", "P001")
    assert code == 0, err
    assert out.strip() == f"P001: (none) -> {NAME} 1.0.0"

    code, out, err = run(server, "switch", NAME, "2.0.0", "--pid", "P001")
    assert code == 0, err
    assert out.strip() == f"P001: {NAME} 1.0.0 -> 2.0.0", out

    code, out, err = run(server, "rollback", "--pid", "P001")
    assert code == 0, err
    assert out.strip() == f"P001: {NAME} 2.0.0 -> 1.0.0", out
    # A second rollback undoes the first: back to the version that served the pid before.
    code, out, err = run(server, "rollback", "--pid", "P001")
    assert code == 0, err
    assert out.strip() == f"P001: {NAME} 1.0.0 -> 2.0.0", out
    assert run_json(server, "active")["P001"]["version"] == "2.0.0"

    # Three versions once active, two kept: the switch says which one it removed.
    code, out, err = run(server, "switch", NAME, "3.0.0", "--pid", "P001")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == f"P001: {NAME} 2.0.0 -> 3.0.0", out
    assert lines[1].startswith(f"removed {NAME} 1.0.0") and "retain_versions" in lines[1], out
    assert [r["version"] for r in run_json(server, "list", "--name", NAME)] == ["2.0.0", "3.0.0"]

    # A worker crash: `show` prints the recorded reason, not "None".
    image = tmp_path / "img.png"
    image.write_bytes(png_bytes(120))
    crashed = run(server, "execute", "--pid", "P001", "--image", str(image), "--params", '{"crash": true}')
    assert crashed[0] != 0

    def last_error_line() -> str | None:
        # The call fails when the pipe breaks; the worker's exit is recorded a moment later.
        shown = run(server, "show", NAME, "3.0.0")[1]
        return next((x for x in shown.splitlines() if x.startswith("last error") and "[" in x), None)

    line = wait_until(last_error_line, what="show to print the crash")
    # "[code] reason", never "[1011 None] None"; the reason wording depends on how the crash was seen.
    assert "None" not in line and re.match(r"last error\s+\[\d{4}( \w+)?\] \S", line), line

    code, out, err = run(server, "activate", NAME, "3.0.0", "--pid", "P002")
    assert code == 0 and out.strip() == f"P002: (none) -> {NAME} 3.0.0", (out, err)
    code, out, err = run(server, "deactivate", "--pid", "P002")
    assert code == 0 and out.strip() == f"P002: {NAME} 3.0.0 -> (none)", (out, err)

    # --force on the active version: the pids it leaves unbound are named (and in --json).
    code, out, err = run(server, "uninstall", NAME, "3.0.0", "--force")
    assert code == 0, err
    assert f"uninstalled {NAME} 3.0.0" in out
    assert "P001" in err and "no active version" in err and "procvision-runner activate" in err
    assert "P001" not in run_json(server, "active")


def _finished(server: RunningServer, op_id: str) -> dict[str, Any] | None:
    op = run_json(server, "operation", op_id)
    return op if op["state"] in ("succeeded", "failed") else None


def test_list_with_a_filter_that_matches_nothing_says_so(server: RunningServer) -> None:
    code, out, _ = run(server, "list", "--state", "invalid")
    assert code == 0 and out.strip() == "(no installed version matches --state invalid)"


def test_execute_help_explains_pid() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["execute", "--help"])
    text = " ".join(out.getvalue().split())
    assert "--pid PID product id" in text and "procvision-runner active" in text


def test_serve_on_a_taken_port_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "fresh-root"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = io.StringIO()
        code = main(["serve", "--root", str(root), "--port", str(port), "--no-watch"], out=io.StringIO(), err=err)
    assert code == exitcodes.exit_code_for("2016"), err.getvalue()
    assert "in use" in err.getvalue()
    assert not root.exists(), sorted(p.name for p in root.rglob("*"))
