"""The daemon's start-up warm-up (package/warm_up.py) learns what a fresh root's first install would
otherwise learn: the interpreter probe and uv's facts about the interpreter. It leaves no venv
behind, a failing step is logged and skipped (never raised), and a stale scratch venv of a killed
daemon is removed at the next start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runner.config import Settings
from runner.package.interpreters import InterpreterFinder
from runner.package.recovery import recover
from runner.package.venvtools import find_uv
from runner.package.warm_up import start_warm_up, warm_up_installs
from runner.store.registry import Registry
from tests.api.support import start_server
from tests.support.waiting import wait_until


def _uv_knows_an_interpreter(settings: Settings) -> bool:
    """Whether uv's cache holds what it learnt by asking an interpreter about itself."""
    return any(path.is_file() for folder in settings.uv_cache.glob("interpreter-v*") for path in folder.rglob("*"))


class _CountingFinder(InterpreterFinder):
    def __init__(self) -> None:
        super().__init__()
        self.probes = 0

    def _run_probe(self, path: str):  # type: ignore[no-untyped-def]
        self.probes += 1
        return super()._run_probe(path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(root=tmp_path / "root")
    settings.layout.ensure()
    return settings


def test_the_warm_up_learns_the_interpreter_and_fills_uv_cache(settings: Settings) -> None:
    if find_uv() is None:
        pytest.skip("uv is not installed next to the runner")
    finder = _CountingFinder()
    assert not _uv_knows_an_interpreter(settings)
    warm_up_installs(settings, finder, find_uv)
    assert _uv_knows_an_interpreter(settings)
    probes = finder.probes
    assert probes >= 1
    finder.choose()  # what the first install's checks do: answered from the probe cache
    assert finder.probes == probes
    assert not settings.layout.warm_up.exists(), "the throwaway venv was left behind"


def test_a_tool_that_fails_is_logged_and_skipped(settings: Settings, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "no-such-uv"
    with caplog.at_level(logging.INFO, logger="runner.package.warm_up"):
        warm_up_installs(settings, InterpreterFinder(), lambda: missing)
    assert "the venv tool could not be prepared" in caplog.text
    assert not _uv_knows_an_interpreter(settings)
    assert not settings.layout.warm_up.exists()


def test_the_warm_up_thread_ends_on_its_own(settings: Settings) -> None:
    thread = start_warm_up(settings, InterpreterFinder(), find_uv)
    thread.join(120)
    assert not thread.is_alive()
    assert thread.daemon and thread.name == "install-warm-up"


def test_a_killed_daemons_scratch_venv_is_removed_at_start(settings: Settings) -> None:
    leftover = settings.layout.warm_up / "abc" / "bin"
    leftover.mkdir(parents=True)
    (leftover / "python").write_text("", encoding="utf-8")
    recover(settings.layout, Registry(settings.layout))
    assert not settings.layout.warm_up.exists()


def test_a_started_daemon_has_warmed_up_before_any_install(tmp_path: Path) -> None:
    if find_uv() is None:
        pytest.skip("uv is not installed next to the runner")
    root = tmp_path / "root"
    server = start_server(root)
    try:
        settings = Settings(root=root)
        wait_until(lambda: _uv_knows_an_interpreter(settings), 120.0, "the daemon's warm-up to fill uv's cache")
        wait_until(lambda: not settings.layout.warm_up.exists(), 120.0, "the warm-up's venv to be removed")
    finally:
        server.stop()
