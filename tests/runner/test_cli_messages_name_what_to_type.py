"""Error messages a CLI user sees name what to type (`procvision-runner list`, `--force`), show pids
as a list people read, never a Python repr, and a wrong token says where the CLI got it."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.cli import exitcodes
from runner.cli.main import main
from tests.api.support import NAME, RunningServer, make_zip, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("cli-messages") / "root")
    yield srv
    srv.stop()


def run(server: RunningServer, *argv: str, root: Path | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--url", server.url, "--root", str(root or server.settings.root)], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _no_repr(text: str) -> None:
    assert "['" not in text and "object at 0x" not in text and "GET /" not in text.split("(API")[0], text


def test_messages_say_what_a_cli_user_types(server: RunningServer, tmp_path: Path) -> None:
    code, _, err = run(server, "install", str(make_zip(tmp_path / "p", "1.0.0")))
    assert code == 0, err
    code, _, err = run(server, "activate", NAME, "1.0.0", "--pid", "P001", "--pid", "P002")
    assert code == 0, err

    code, _, err = run(server, "activate", NAME, "1.0.0", "--pid", "P009")
    assert code == exitcodes.exit_code_for("2006")
    assert "does not support pid(s) P009; it supports P001, P002" in err, err
    _no_repr(err)

    code, _, err = run(server, "uninstall", NAME, "1.0.0")
    assert code == exitcodes.exit_code_for("2007")
    assert "active for pid(s) P001, P002" in err and "--force" in err and "with force" not in err, err
    _no_repr(err)

    code, _, err = run(server, "deactivate", "--pid", "P001", "--pid", "P777")
    assert code == exitcodes.exit_code_for("2009") and "pid(s) P777 have no active version" in err, err
    _no_repr(err)

    code, _, err = run(server, "show", NAME, "9.9.9")
    assert code == exitcodes.exit_code_for("2009") and "`procvision-runner list`" in err, err

    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    code, _, err = run(server, "execute", "--pid", "P001", "--image", str(corrupt))
    assert code == exitcodes.exit_code_for("1002"), err
    assert "PNG" in err and "object at 0x" not in err and "<_io" not in err, err
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is no image at all")
    code, _, err = run(server, "execute", "--pid", "P001", "--image", str(garbage))
    assert code == exitcodes.exit_code_for("1002") and "object at 0x" not in err and "<_io" not in err, err


def test_a_wrong_token_says_where_the_cli_got_it(server: RunningServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(server, "list", "--token", "wrong-token")
    assert code == exitcodes.exit_code_for("2015") and "from --token" in err, err

    monkeypatch.setenv("PROCVISION_RUNNER_TOKEN", "wrong-token")
    code, _, err = run(server, "list")
    assert code == exitcodes.exit_code_for("2015") and "from PROCVISION_RUNNER_TOKEN" in err, err
    monkeypatch.delenv("PROCVISION_RUNNER_TOKEN")

    other_root = tmp_path / "other-root"
    other_root.mkdir()
    token_file = other_root / ".token"
    token_file.write_text("not-the-daemons-token\n")
    token_file.chmod(0o600)
    code, _, err = run(server, "list", root=other_root)
    assert code == exitcodes.exit_code_for("2015"), err
    assert f"from token file {token_file.resolve()}" in err and "--root" in err, err
