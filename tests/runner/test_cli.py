"""`procvision-runner` client commands against a real daemon (uvicorn on a free port, real package)."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.cli import exitcodes
from runner.cli.client import RunnerClient
from runner.cli.main import main
from tests.api.support import NAME, RunningServer, make_zip, png_bytes, start_server
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("cli") / "root")
    yield srv
    srv.stop()


def run(server: RunningServer, *argv: str, token: bool = True) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = [*argv, "--url", server.url, "--root", str(server.settings.root)]
    if not token:
        args += ["--token", "wrong-token"]
    code = main(args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def run_json(server: RunningServer, *argv: str) -> Any:
    code, out, err = run(server, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_exit_codes_table() -> None:
    assert exitcodes.exit_code_for("2001") == 11
    assert exitcodes.exit_code_for("2012") == 22
    assert exitcodes.exit_code_for("2015") == 25
    assert exitcodes.exit_code_for("1005") == 35
    assert exitcodes.exit_code_for("nonsense") == exitcodes.FAILURE
    assert exitcodes.exit_code_for(None) == exitcodes.FAILURE


def test_full_cli_flow(server: RunningServer, tmp_path: Path) -> None:
    v1, v2 = make_zip(tmp_path / "p1", "1.0.0"), make_zip(tmp_path / "p2", "2.0.0")

    code, out, err = run(server, "install", str(v1))
    assert code == 0, err
    assert f"installed: {NAME} 1.0.0" in out
    assert "smoke test" in err and "publishing" in err and "6/6" in err
    op = run_json(server, "install", str(v2), "--by-path")
    assert op["state"] == "succeeded" and op["result"]["version"] == "2.0.0"
    code, out, _ = run(server, "install", str(v1))
    assert code == 0 and "already installed" in out

    code, out, _ = run(server, "list")
    assert code == 0 and "NAME" in out and "1.0.0" in out and "2.0.0" in out
    assert [r["version"] for r in run_json(server, "list", "--name", NAME)] == ["1.0.0", "2.0.0"]

    code, out, err = run(server, "activate", NAME, "1.0.0", "--pid", "P001", "--pid", "P002")
    assert code == 0, err
    assert "P001" in out and "P002" in out
    assert run_json(server, "active")["P001"]["version"] == "1.0.0"

    image = tmp_path / "img.png"
    image.write_bytes(png_bytes(120))
    code, out, err = run(server, "execute", "--pid", "P001", "--image", str(image), "--params", '{"say": "hi"}')
    assert code == 0, err
    assert "status" in out and "OK" in out and f"{NAME} 1.0.0" in out
    result = run_json(server, "execute", "--pid", "P001", "--image", str(image))
    assert result["data"]["result_status"] == "OK"
    failing = run(server, "execute", "--pid", "P001", "--image", str(image), "--params", '{"fail": true}')
    assert failing[0] == exitcodes.exit_code_for("1003")
    assert run(server, "execute", "--pid", "P001", "--image", str(image), "--params", "[")[0] == exitcodes.USAGE

    code, out, _ = run(server, "logs", NAME, "1.0.0", "--tail", "50")
    assert code == 0 and "hi" in out
    followed: list[str] = []

    def follow() -> None:
        with RunnerClient(server.url, server.token) as client:
            for line in client.follow_logs(NAME, "1.0.0", tail=0):
                followed.append(line)
                if "followed" in line:
                    return

    threading.Thread(target=follow, daemon=True).start()

    def new_line_arrives() -> bool:
        # Lines logged before the stream connected are not sent (tail=0): keep logging until one is.
        run(server, "execute", "--pid", "P001", "--image", str(image), "--params", '{"say": "followed"}')
        return any("followed" in line for line in followed)

    wait_until(new_line_arrives, what="a new log line on the followed stream")

    code, out, _ = run(server, "show", NAME, "1.0.0")
    assert code == 0 and "active for" in out and "P001" in out
    code, out, _ = run(server, "status")
    assert code == 0 and "ready" in out and "yes" in out

    code, out, _ = run(server, "stop", NAME, "1.0.0")
    assert code == 0 and "stopped" in out
    code, out, _ = run(server, "status")
    assert code == exitcodes.NOT_READY and "no" in out
    assert run(server, "start", NAME, "1.0.0")[0] == 0
    assert run(server, "restart", NAME, "1.0.0")[0] == 0

    assert run(server, "switch", NAME, "2.0.0", "--pid", "P001")[0] == 0
    assert run_json(server, "active")["P001"]["version"] == "2.0.0"
    assert run(server, "rollback", "--pid", "P001")[0] == 0
    assert run_json(server, "active")["P001"]["version"] == "1.0.0"

    report = run_json(server, "validate", str(v2))
    assert report["summary"]["status"] == "PASS"
    code, out, _ = run(server, "validate", NAME, "1.0.0")
    assert code == 0 and "PASS" in out

    code, _, err = run(server, "uninstall", NAME, "1.0.0")
    assert code == exitcodes.exit_code_for("2007") and "2007" in err
    assert run(server, "deactivate", "--pid", "P001", "--pid", "P002")[0] == 0
    code, out, _ = run(server, "uninstall", NAME, "1.0.0")
    assert code == 0 and "uninstalled" in out
    assert run(server, "uninstall", NAME, "2.0.0", "--force")[0] == 0
    assert run_json(server, "list") == []


def test_errors_become_exit_codes(server: RunningServer, tmp_path: Path) -> None:
    code, _, err = run(server, "show", "ghost", "1.0")
    assert code == exitcodes.exit_code_for("2009") and "not installed" in err
    code, _, err = run(server, "list", token=False)
    assert code == exitcodes.exit_code_for("2015") and "2015" in err
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    code, _, err = run(server, "install", str(bad))
    assert code == exitcodes.exit_code_for("2001") and "install failed" in err
    assert run(server, "install", str(tmp_path / "missing.zip"))[0] == exitcodes.USAGE
    code, out, _ = run(server, "install", str(bad), "--no-wait")
    assert code == 0 and "operation" in out
    op_id = out.split()[1]
    assert run(server, "operation", op_id)[0] in (0, exitcodes.exit_code_for("2001"))


def test_unreachable_daemon(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    err = io.StringIO()
    code = main(["list", "--url", f"http://127.0.0.1:{port}", "--root", str(tmp_path), "--timeout", "5"],
                out=io.StringIO(), err=err)
    assert code == exitcodes.UNREACHABLE and "cannot reach" in err.getvalue()
