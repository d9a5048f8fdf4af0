"""Drop folder: special files and symlinks are never opened, unchanged zips are not re-hashed."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.package.drop_entries import NotRegularFile, hash_regular, open_regular
from runner.package.drop_memory import DropMemory
from runner.package.installer import Installer, InstallResult
from runner.package.watcher import DropFolderWatcher
from runner.store.registry import Registry
from tests.support.packages import build_package, hostile_zip, manifest_for, valid_entries
from tests.support.waiting import wait_until

STABLE_S = 0.3
LOGGER = "runner.package"


class Harness:
    def __init__(self, root: Path, uv_cache: Path) -> None:
        self.settings = Settings(root=root, uv_cache_dir=uv_cache, drop_stable_s=STABLE_S)
        self.registry = Registry(self.settings.layout)
        self.installer = Installer(self.settings, self.registry)
        self.results: list[tuple[Path, InstallResult | RunnerError]] = []
        self._lock = threading.Lock()
        self.watcher = self.new_watcher()
        self.drop = self.settings.layout.zips
        self.rejected = self.settings.layout.rejected

    def new_watcher(self) -> DropFolderWatcher:
        return DropFolderWatcher(self.settings, self.installer, self._on_result)

    def _on_result(self, path: Path, outcome: InstallResult | RunnerError) -> None:
        with self._lock:
            self.results.append((path, outcome))

    def outcome_for(self, name: str) -> InstallResult | RunnerError | None:
        with self._lock:
            return next((o for p, o in self.results if p.name == name), None)


@pytest.fixture
def harness(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tmp_path / "root", tmp_path_factory.getbasetemp() / "uv-cache-watcher")
    h.settings.layout.ensure()
    yield h
    h.watcher.stop()


def _no_wheels_zip(path: Path, name: str) -> Path:
    """A complete package without wheels: the installer rejects it with 2004 (proves it was reached)."""
    return hostile_zip(path, valid_entries(manifest_for(name=name)))


def _assert_rejected_special(h: Harness, name: str, what: str) -> None:
    outcome = h.outcome_for(name)
    assert isinstance(outcome, RunnerError) and outcome.code == "2001", outcome
    assert what in outcome.message and "not a regular file" in outcome.message
    assert not os.path.lexists(h.drop / name)
    assert os.path.lexists(h.rejected / name)
    error = json.loads((h.rejected / f"{name}.error.json").read_text())
    assert error["code"] == "2001" and error["name"] == "invalid_zip" and what in error["message"]
    assert error["details"]["entry"] == name


def test_fifo_created_while_watching_is_moved_aside_and_later_zips_install(harness: Harness,
                                                                          tmp_path: Path) -> None:
    harness.watcher.start()
    os.mkfifo(harness.drop / "fifo.zip")
    wait_until(lambda: harness.outcome_for("fifo.zip") is not None)
    _assert_rejected_special(harness, "fifo.zip", "named pipe")
    # The install thread is not stuck: a zip copied in afterwards reaches the installer.
    src = _no_wheels_zip(tmp_path / "src" / "after.zip", "after")
    (harness.drop / "after.zip").write_bytes(src.read_bytes())
    wait_until(lambda: harness.outcome_for("after.zip") is not None)
    outcome = harness.outcome_for("after.zip")
    assert isinstance(outcome, RunnerError) and outcome.code == "2004", outcome


def test_fifo_found_by_the_startup_scan_is_moved_aside(harness: Harness) -> None:
    os.mkfifo(harness.drop / "early.zip")
    _no_wheels_zip(harness.drop / "second.zip", "second")
    harness.watcher.start()
    wait_until(lambda: harness.outcome_for("second.zip") is not None)
    wait_until(lambda: harness.outcome_for("early.zip") is not None)
    _assert_rejected_special(harness, "early.zip", "named pipe")


def test_symlinks_are_never_followed(harness: Harness, tmp_path: Path) -> None:
    outside = _no_wheels_zip(tmp_path / "outside" / "real.zip", "outside")
    before = outside.read_bytes()
    os.symlink("/etc/passwd", harness.drop / "link.zip")
    harness.watcher.start()
    os.symlink(outside, harness.drop / "tozip.zip")
    wait_until(lambda: harness.outcome_for("link.zip") is not None
                     and harness.outcome_for("tozip.zip") is not None)
    _assert_rejected_special(harness, "link.zip", "symbolic link")
    _assert_rejected_special(harness, "tozip.zip", "symbolic link")
    # The links themselves were moved; what they point at was never installed nor touched.
    assert os.path.islink(harness.rejected / "tozip.zip") and os.path.islink(harness.rejected / "link.zip")
    assert outside.read_bytes() == before
    assert harness.registry.list() == []


def test_open_regular_refuses_links_and_fifos_without_blocking(tmp_path: Path) -> None:
    regular = tmp_path / "a.zip"
    regular.write_bytes(b"abc")
    os.symlink(regular, tmp_path / "l.zip")
    os.mkfifo(tmp_path / "f.zip")
    sha, (_ino, size, _mtime) = hash_regular(regular)
    assert size == 3 and sha == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    for name, what in (("l.zip", "symbolic link"), ("f.zip", "named pipe")):
        with pytest.raises(NotRegularFile) as caught:
            open_regular(tmp_path / name)
        assert what in caught.value.what


def test_directory_named_zip_is_left_alone(harness: Harness) -> None:
    (harness.drop / "folder.zip").mkdir()
    harness.watcher.start()
    harness.watcher.scan()
    wait_until(harness.watcher.idle)
    assert harness.results == [] and (harness.drop / "folder.zip").is_dir()


@pytest.mark.slow
def test_installed_zips_move_to_processed_and_content_is_installed_once(harness: Harness, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    package = build_package(tmp_path / "src")
    processed = harness.settings.layout.processed
    harness.watcher.start()
    (harness.drop / package.name).write_bytes(package.read_bytes())
    wait_until(lambda: harness.outcome_for(package.name) is not None, 180)
    outcome = harness.outcome_for(package.name)
    assert isinstance(outcome, InstallResult) and outcome.state == "installed", outcome
    wait_until(harness.watcher.idle)
    assert (processed / package.name).is_file() and not (harness.drop / package.name).exists()
    moved = [r.getMessage() for r in caplog.records if "moved to zips/processed/" in r.getMessage()]
    assert moved and f"installed {outcome.name} {outcome.version}" in moved[0], moved

    # The same bytes under another name (also after a restart): "already installed", moved out, never
    # installed twice.
    harness.watcher.stop()
    caplog.clear()
    harness.watcher = harness.new_watcher()
    harness.watcher.start()
    (harness.drop / "copy.zip").write_bytes(package.read_bytes())
    wait_until(lambda: (processed / "copy.zip").is_file(), what="copy.zip moved to processed/")
    lines = [r for r in caplog.records if "copy.zip" in r.getMessage()]
    assert any(r.levelno == logging.INFO and "already installed" in r.getMessage()
               and f"dropped before as {package.name}" in r.getMessage() for r in lines), lines
    assert not any("copy.zip: installed" in r.getMessage() for r in lines)
    assert len(harness.results) == 1 and [r["state"] for r in harness.registry.list()] == ["installed"]

    # The same name again: the older copy in processed/ is kept, the new one gets a timestamped name.
    (harness.drop / package.name).write_bytes(package.read_bytes())
    wait_until(lambda: len(list(processed.glob("*.zip"))) == 3, what="a third zip in processed/")


def test_a_zip_that_cannot_be_moved_out_is_not_hashed_again(harness: Harness, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """processed/ cannot be made (a file is in its way): the zip stays, the error is logged once, and
    rescans skip it by its (inode, size, mtime) instead of hashing it again."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    processed = harness.settings.layout.processed
    _no_wheels_zip(tmp_path / "first.zip", "stays")
    harness.watcher.start()
    processed.rmdir()
    processed.write_text("in the way")
    zip_path = harness.drop / "stays.zip"
    # Content remembered as installed (as after an earlier drop) goes straight to processed/.
    data = (tmp_path / "first.zip").read_bytes()
    staged = tmp_path / "staged.zip"
    staged.write_bytes(data)
    DropMemory(harness.settings.layout.drop_state_file).remember(hash_regular(staged)[0], "earlier.zip", "installed",
                                                                 name="stays", version="1.0.0")
    os.rename(staged, zip_path)
    wait_until(lambda: any("cannot move" in r.getMessage() for r in caplog.records), what="the move to fail")
    wait_until(harness.watcher.idle)
    assert zip_path.is_file()
    caplog.clear()
    for _ in range(3):
        harness.watcher.scan()
        wait_until(harness.watcher.idle)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert not any("already installed" in m for _, m in messages), messages
    assert any(level == logging.DEBUG and "unchanged since it was processed" in m for level, m in messages)


@pytest.mark.slow
def test_content_installed_through_the_api_is_logged_as_already_installed(harness: Harness, tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    package = build_package(tmp_path / "src")
    installed = harness.installer.install(package)  # as `procvision-runner install` would
    harness.watcher.start()
    (harness.drop / "same.zip").write_bytes(package.read_bytes())
    wait_until(lambda: harness.outcome_for("same.zip") is not None, 180)
    outcome = harness.outcome_for("same.zip")
    assert isinstance(outcome, InstallResult) and outcome.idempotent, outcome
    wait_until(lambda: (harness.settings.layout.processed / "same.zip").is_file(), what="same.zip moved")
    lines = [r.getMessage() for r in caplog.records if "same.zip" in r.getMessage()]
    assert any(f"already installed ({installed.name} {installed.version})" in m for m in lines), lines
    assert not any(": installed " in m for m in lines), lines
