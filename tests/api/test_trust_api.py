"""The trust store through the API and the CLI of a real daemon (trust_mode require): adding and removing
keys, signed and unsigned installs, who signed each version in list/show/metrics, and refusing to
activate a version whose signer is no longer trusted."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.cli import exitcodes
from runner.cli.main import main
from tests.api.support import RunningServer, install, make_zip, start_server
from tests.support.signing import Key, make_key, sign_with_key

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("trust") / "root", trust_mode="require")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Key:
    return make_key(tmp_path_factory.mktemp("keys"))


def cli(server: RunningServer, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--url", server.url, "--root", str(server.settings.root)], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = dict(response.json())
    assert body["code"] == code, body
    return body


def test_trust_routes_need_the_token(server: RunningServer) -> None:
    with server.client(token=None) as client:
        _problem(client.get("/trust"), 401, "2015")
        _problem(client.post("/trust", json={"pem": "x"}), 401, "2015")
        _problem(client.delete("/trust/abc"), 401, "2015")


def test_private_keys_and_garbage_are_refused(server: RunningServer, key: Key) -> None:
    with server.client() as client:
        body = _problem(client.post("/trust", json={"pem": key.private.read_text()}), 422, "2013")
        assert "private key" in body["detail"]
        _problem(client.post("/trust", json={"pem": "-----BEGIN PUBLIC KEY-----\nnope\n"}), 422, "2013")
        _problem(client.delete("/trust/0123456789abcdef"), 404, "2009")


def test_signed_install_signer_shown_and_untrusting_refuses_activation(server: RunningServer, key: Key,
                                                                        tmp_path: Path) -> None:
    with server.client() as client:
        assert client.get("/trust").json()["mode_in_force"] == "require"
        failed = install(client, make_zip(tmp_path / "unsigned", version="0.9.0"))
        assert failed["state"] == "failed" and failed["error"]["code"] == "2030", failed

        added = client.post("/trust", json={"pem": key.public.read_text(), "name": "line3"})
        assert added.status_code == 200, added.text
        assert added.json()["fingerprint"] == key.fingerprint and added.json()["kind"] == "key"
        listing = client.get("/trust").json()
        assert [e["name"] for e in listing["entries"]] == ["line3"]

        done = install(client, sign_with_key(make_zip(tmp_path / "signed", version="1.0.0"), key))
        assert done["state"] == "succeeded", done
        shown = client.get("/algorithms/api_algo/1.0.0").json()
        assert shown["signature"]["signer"]["fingerprint"] == key.fingerprint
        assert shown["signer"] == f"key sha256:{key.fingerprint[:16]}" and shown["signer_trusted"] is True
        metrics = client.get("/metrics").text
        assert 'procvision_trusted_signers{kind="key"} 1' in metrics
        assert (f'procvision_version_signer_trusted{{name="api_algo",version="1.0.0",'
                f'signer="key sha256:{key.fingerprint[:16]}"}} 1') in metrics
        activated = client.post("/algorithms/activate", json={"name": "api_algo", "version": "1.0.0",
                                                              "pids": ["P001"]})
        assert activated.status_code == 200, activated.text

        # Untrust the key: nothing is uninstalled, but the version is flagged and cannot be activated.
        removed = client.delete(f"/trust/{key.fingerprint[:12]}")
        assert removed.status_code == 200 and removed.json()["name"] == "line3"
        rows = {r["version"]: r for r in client.get("/algorithms").json()}
        assert rows["1.0.0"]["state"] != "invalid" and rows["1.0.0"]["signer_trusted"] is False
        assert 'signer="key sha256:' in client.get("/metrics").text
        assert f'{key.fingerprint[:16]}"}} 0' in client.get("/metrics").text
        body = _problem(client.post("/algorithms/activate", json={"name": "api_algo", "version": "1.0.0",
                                                                  "pids": ["P002"]}), 409, "2035")
        assert key.fingerprint in body["detail"]
        _problem(client.post("/algorithms/switch", json={"name": "api_algo", "version": "1.0.0",
                                                         "pids": ["P001"]}), 409, "2035")

    code, out, _err = cli(server, "list")
    assert code == 0 and "(NOT TRUSTED)" in out
    code, out, _err = cli(server, "show", "api_algo", "1.0.0")
    assert code == 0 and f"key sha256:{key.fingerprint[:16]} (NOT TRUSTED)" in out
    code, _out, err = cli(server, "activate", "api_algo", "1.0.0", "--pid", "P002")
    assert code == exitcodes.exit_code_for("2035") == 105 and "2035" in err


def test_cli_trust_add_list_remove(server: RunningServer, tmp_path: Path) -> None:
    other = make_key(tmp_path, "other")
    code, out, err = cli(server, "trust", "add", str(other.public), "--name", "other")
    assert code == 0, err
    assert f"sha256:{other.fingerprint}" in out
    stored = Path(server.settings.layout.trust / "other.pem")
    assert stored.stat().st_mode & 0o777 == 0o640
    code, out, _err = cli(server, "trust", "list", "--json")
    listing = json.loads(out)
    # The CLI reads the root's settings (no config file here: auto), which a trusted key turns into require.
    assert (listing["trust_mode"], listing["mode_in_force"]) == ("auto", "require")
    assert other.fingerprint in [e["fingerprint"] for e in listing["entries"]]
    # A file anyone may rewrite does not count: whoever can write the store decides what runs.
    stored.chmod(0o666)
    code, out, _err = cli(server, "trust", "list")
    assert "writable by group or others" in out
    stored.chmod(0o640)
    code, out, _err = cli(server, "trust", "remove", "other")
    assert code == 0 and "no longer trusted" in out
    code, _out, err = cli(server, "trust", "remove", "other")
    assert code == exitcodes.exit_code_for("2009") and "2009" in err


def test_cli_install_under_warn_says_the_package_is_unsigned(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "root", trust_mode="warn")
    try:
        code, out, err = cli(srv, "install", str(make_zip(tmp_path / "pkg")))
        assert code == 0, err
        assert "installed: api_algo 1.0.0" in out
        assert "WARNING: the package is unsigned" in err and "trust_mode is warn" in err
        code, out, _err = cli(srv, "list")
        assert "unsigned (NOT TRUSTED)" in out
    finally:
        srv.stop()
