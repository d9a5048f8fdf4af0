"""Atomic writes leave the old or the new file, never a partial one or a temp file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.store import atomic


def test_write_and_read_json(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    atomic.write_json_atomic(target, {"b": 1, "a": [1, 2]})
    assert atomic.read_json(target) == {"a": [1, 2], "b": 1}
    assert atomic.read_json(tmp_path / "none.json", default={}) == {}
    assert os.listdir(target.parent) == ["state.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic.write_json_atomic(target, {"v": 1})
    with pytest.raises(TypeError):
        atomic.write_json_atomic(target, {"v": object()})
    assert atomic.read_json(target) == {"v": 1}
    assert os.listdir(tmp_path) == ["state.json"]


def test_mode_is_applied(tmp_path: Path) -> None:
    target = tmp_path / "token"
    atomic.write_bytes_atomic(target, b"secret", mode=0o600)
    assert target.stat().st_mode & 0o777 == 0o600
