"""The CLI against a real daemon: global options before the command, execute's HTTP timeout follows
--timeout-ms, new execute options, a closed stdout pipe, validate exit codes, token hints."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.cli import exitcodes
from runner.cli.main import main
from tests.api.support import NAME, RunningServer, install, make_zip, png_bytes, start_server
from tests.support.packages import build_package, manifest_for

CLI = [sys.executable, "-m", "runner.cli.main"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("cli_options")
    srv = start_server(base / "root")
    with srv.client() as client:
        assert install(client, make_zip(base / "pkgs"))["state"] == "succeeded"
        activated = client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0", "pids": ["P001"]})
        assert activated.status_code == 200, activated.text
    yield srv
    srv.stop()


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_global_options_before_and_after_the_command(server: RunningServer) -> None:
    url, root = server.url, str(server.settings.root)
    code, out, err = run("--url", url, "--root", root, "--json", "list")
    assert code == 0, err
    assert any(r["name"] == NAME for r in json.loads(out))
    code, out, err = run("list", "--url", url, "--root", root, "--json")
    assert code == 0, err
    assert any(r["name"] == NAME for r in json.loads(out))
    # Mixed: some before, some after; the later value is not reset by the subcommand's defaults.
    code, out, err = run("--url", url, "--timeout", "12", "list", "--root", root, "--json")
    assert code == 0, err
    assert any(r["name"] == NAME for r in json.loads(out))


def test_execute_waits_as_long_as_timeout_ms_allows(server: RunningServer, tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(png_bytes())
    # --timeout 1 would give up after 1 s; the call takes 2.5 s and --timeout-ms 60000 allows that.
    code, out, err = run("--url", server.url, "--root", str(server.settings.root), "--timeout", "1", "--json",
                         "execute", "--pid", "P001", "--image", str(image), "--timeout-ms", "60000",
                         "--params", '{"sleep_s": 2.5}')
    assert code == 0, err
    assert json.loads(out)["status"] == "OK"


def test_execute_passes_step_desc_guide_info_and_end_session(server: RunningServer, tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(png_bytes())
    common = ["--url", server.url, "--root", str(server.settings.root)]
    code, out, err = run(*common, "--json", "execute", "--pid", "P001", "--image", str(image),
                         "--session", "s-1", "--step-desc", "look at the hole",
                         "--guide-info", '[{"label": "hole"}]', "--end-session")
    assert code == 0, err
    assert json.loads(out)["status"] == "OK"
    code, _out, err = run(*common, "execute", "--pid", "P001", "--image", str(image), "--guide-info", '{"a": 1}')
    assert code == exitcodes.USAGE and "--guide-info must be a JSON list" in err


def test_execute_into_a_closed_pipe_exits_quietly(server: RunningServer, tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(png_bytes())
    # `true` exits without reading: the CLI's output hits a closed pipe once the call has answered.
    command = [*CLI, "--url", server.url, "--root", str(server.settings.root), "execute", "--pid", "P001",
               "--image", str(image), "--json"]
    shell = " ".join(f"'{part}'" for part in command) + " | true; echo \"rc=${PIPESTATUS[0]}\""
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert "rc=0" in done.stdout, (done.stdout, done.stderr)


def test_validate_exit_codes_follow_the_table(server: RunningServer, tmp_path: Path) -> None:
    bad = tmp_path / "BAD.zip"
    bad.write_bytes(b"this is not a zip")
    common = ["--url", server.url, "--root", str(server.settings.root)]
    code, out, err = run(*common, "validate", str(bad))
    assert code == exitcodes.exit_code_for("2001") == 11, (out, err)
    assert "FAIL" in out


def test_validate_rerun_of_an_invalid_version(server: RunningServer, tmp_path: Path) -> None:
    manifest = manifest_for(name="cli_bad", version="0.2.0", pids=("C01",))
    broken = build_package(tmp_path / "bad", manifest=manifest,
                           files={"algo/__init__.py": "", "algo/main.py": "raise RuntimeError('broken')\n"})
    with server.client() as client:
        assert install(client, broken)["state"] == "failed"
    code, out, err = run("--url", server.url, "--root", str(server.settings.root),
                         "validate", "cli_bad", "0.2.0", "--rerun")
    assert "recorded invalid" in err and "not deployed" in err, err
    assert "No such file" not in out + err
    assert "FAIL" in out  # the stored report is shown
    assert code not in (exitcodes.OK, exitcodes.UNREACHABLE)


def test_missing_token_names_the_path_tried(server: RunningServer, tmp_path: Path) -> None:
    wrong_root = tmp_path / "elsewhere"
    code, _out, err = run("--url", server.url, "--root", str(wrong_root), "list")
    assert code == exitcodes.exit_code_for("2015"), err
    assert str(wrong_root / ".token") in err
