"""Settings precedence: CLI overrides > environment > config file > defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from runner.config import Settings


def test_defaults() -> None:
    s = Settings.load(root=None)
    assert (s.host, s.port, s.execute_timeout_ms, s.heartbeat_interval_ms, s.max_defects) == (
        "127.0.0.1", 8765, 5000, 5000, 20)
    assert s.auth_enabled


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "runner_config.json"
    cfg.write_text(json.dumps({"port": 1111, "execute_timeout_ms": 7000, "max_retries": 5}))
    monkeypatch.setenv("PROCVISION_RUNNER_EXECUTE_TIMEOUT_MS", "8000")
    s = Settings.load(cfg, max_retries=1)
    assert s.port == 1111  # file beats default
    assert s.execute_timeout_ms == 8000  # env beats file
    assert s.max_retries == 1  # CLI beats file


def test_root_config_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "runner_config.json").write_text(json.dumps({"queue_max": 3}))
    assert Settings.load(root=tmp_path).queue_max == 3


def test_bad_values_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Settings.load(port=70000)
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"no_such_key": 1}))
    with pytest.raises(ValidationError):
        Settings.load(cfg)
    cfg.write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        Settings.load(cfg)
