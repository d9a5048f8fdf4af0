"""The CLI's light endpoint resolution gives the same URL and token as the full Settings would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.cli.endpoint import EndpointProblem, resolve_endpoint, url_for
from runner.config import Settings
from runner.tokens import read_token_file


def _via_settings(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, root: Path | None,
                  config: Path | None, token: str | None) -> tuple[str, str | None, Path]:
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    settings = Settings.load(config, root=root)
    found = token or settings.token or read_token_file(settings.layout.token_file)
    return url_for(settings.host, settings.port), found, settings.layout.token_file


CASES: list[dict[str, Any]] = [
    {},
    {"env": {"PROCVISION_RUNNER_PORT": "9001"}},
    {"env": {"procvision_runner_host": "0.0.0.0"}},
    {"file": {"port": 9100, "host": "::1"}, "flag_config": True},
    {"file": {"port": 9100}, "env": {"PROCVISION_RUNNER_PORT": "9200"}, "flag_config": True},
    {"file": {"port": 9300, "token": "from-file"}, "in_root": True},
    {"file": {"port": 9300, "root": "OTHER"}, "flag_config": True},
    {"env": {"PROCVISION_RUNNER_TOKEN": "from-env"}, "file": {"token": "from-file"}, "in_root": True},
    {"token_file": "on-disk-token"},
    {"token_file": "on-disk-token", "flag_token": "explicit"},
]


@pytest.mark.parametrize("case", CASES)
def test_endpoint_matches_settings(case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for key in list(__import__("os").environ):
        if key.lower().startswith("procvision_runner_"):
            monkeypatch.delenv(key)
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "OTHER").mkdir()
    config = None
    file_values = dict(case.get("file", {}))
    if "root" in file_values:
        file_values["root"] = str(tmp_path / file_values["root"])
        other = Path(file_values["root"]) / ".token"
        other.write_text("other-root-token\n")
        other.chmod(0o600)  # the daemon writes it so; a readable one is refused (2018)
    if file_values:
        config = (root / "runner_config.json") if case.get("in_root") else tmp_path / "cfg.json"
        config.write_text(json.dumps(file_values))
    if "token_file" in case:
        (root / ".token").write_text(case["token_file"] + "\n")
        (root / ".token").chmod(0o600)
    flag_config = config if case.get("flag_config") else None
    environ = dict(case.get("env", {}))
    endpoint = resolve_endpoint(environ, root=None if "root" in file_values else root, config=flag_config,
                                token=case.get("flag_token"))
    url, token, token_file = _via_settings(environ, monkeypatch, None if "root" in file_values else root,
                                           flag_config, case.get("flag_token"))
    assert (endpoint.url, endpoint.token, endpoint.token_file) == (url, token, token_file)


def test_bad_values_name_their_source(tmp_path: Path) -> None:
    with pytest.raises(EndpointProblem, match="PROCVISION_RUNNER_PORT"):
        resolve_endpoint({"PROCVISION_RUNNER_PORT": "eighty"}, root=tmp_path)
    config = tmp_path / "c.json"
    config.write_text("[1]")
    with pytest.raises(EndpointProblem, match="JSON object"):
        resolve_endpoint({}, root=tmp_path, config=config)
    config.write_text(json.dumps({"port": 70000}))
    with pytest.raises(EndpointProblem, match="0-65535"):
        resolve_endpoint({}, root=tmp_path, config=config)


def test_flag_url_wins(tmp_path: Path) -> None:
    assert resolve_endpoint({"PROCVISION_RUNNER_PORT": "1"}, root=tmp_path, url="http://h:2").url == "http://h:2"
