"""Drop folder: zips are installed only when complete, exactly once, and rejects are visible."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.package.drop_entries import is_in_progress_name, is_zip_name
from runner.package.installer import Installer, InstallResult
from runner.package.watcher import DropFolderWatcher
from runner.store.registry import Registry
from tests.support.packages import build_package, hostile_zip, manifest_for, valid_entries
from tests.support.waiting import wait_until

STABLE_S = 0.5


class RecordingInstaller(Installer):
    """The real installer, noting when each install starts and what the file looked like then."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        super().__init__(settings, registry)
        self.calls: list[tuple[str, float, int]] = []

    def install(self, zip_path: Path, progress: Callable[[str], None] | None = None) -> InstallResult:
        self.calls.append((zip_path.name, time.monotonic(), zip_path.stat().st_size))
        return super().install(zip_path, progress)


class FakeClock:
    """A monotonic clock that moves only when the test moves it (the watcher's ``clock`` seam)."""

    def __init__(self) -> None:
        self._now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class Harness:
    def __init__(self, root: Path, uv_cache: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = Settings(root=root, uv_cache_dir=uv_cache, drop_stable_s=STABLE_S)
        self.registry = Registry(self.settings.layout)
        self.installer = RecordingInstaller(self.settings, self.registry)
        self.results: list[tuple[Path, InstallResult | RunnerError, float]] = []
        self._lock = threading.Lock()
        self.watcher = DropFolderWatcher(self.settings, self.installer, self._on_result, clock=clock)
        self.drop = self.settings.layout.zips

    def _on_result(self, path: Path, outcome: InstallResult | RunnerError) -> None:
        with self._lock:
            self.results.append((path, outcome, time.monotonic()))

    def wait_results(self, count: int, timeout_s: float = 180.0) -> None:
        wait_until(lambda: len(self.results) >= count, timeout_s, f"{count} drop-folder results")

    def settle(self) -> None:
        """Rescan and wait until the watcher has nothing left to do."""
        self.watcher.scan()
        wait_until(self.watcher.idle, what="the watcher to be idle")


@pytest.fixture
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "uv-cache-watcher"


def _harness(tmp_path: Path, uv_cache: Path, clock: Callable[[], float] = time.monotonic) -> Iterator[Harness]:
    h = Harness(tmp_path / "root", uv_cache, clock)
    h.settings.layout.ensure()
    yield h
    h.watcher.stop()


@pytest.fixture
def harness(tmp_path: Path, uv_cache: Path) -> Iterator[Harness]:
    yield from _harness(tmp_path, uv_cache)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked_harness(tmp_path: Path, uv_cache: Path, clock: FakeClock) -> Iterator[Harness]:
    """A harness whose watcher measures its waiting periods on ``clock``."""
    yield from _harness(tmp_path, uv_cache, clock)


def _slow_copy(src: Path, dest: Path, seconds: float, reopen: bool) -> None:
    """Write ``src`` to ``dest`` in chunks over ``seconds`` (kept open, or reopened for each chunk)."""
    data = src.read_bytes()
    chunks = 10
    size = len(data) // chunks + 1
    parts = [data[i * size:(i + 1) * size] for i in range(chunks)]
    # The sleeps simulate a slow network copy; they are not waits for the code under test.
    if reopen:
        for part in parts:
            with open(dest, "ab") as handle:
                handle.write(part)
            time.sleep(seconds / chunks)
        return
    with open(dest, "wb") as handle:
        for part in parts:
            handle.write(part)
            handle.flush()
            os.fsync(handle.fileno())
            time.sleep(seconds / chunks)


@pytest.mark.slow
def test_slow_copy_is_installed_once_after_it_completes(harness: Harness, tmp_path: Path) -> None:
    package = build_package(tmp_path / "src")
    harness.watcher.start()
    _slow_copy(package, harness.drop / package.name, 2.0, reopen=False)
    copied_at = time.monotonic()
    harness.wait_results(1)
    name, started, size = harness.installer.calls[0]
    assert started >= copied_at and size == package.stat().st_size, "never opened while being copied"
    outcome = harness.results[0][1]
    assert isinstance(outcome, InstallResult) and outcome.state == "installed"
    harness.settle()
    assert len(harness.installer.calls) == 1 and len(harness.results) == 1
    processed = harness.settings.layout.processed
    assert not (harness.drop / package.name).exists() and (processed / package.name).is_file(), \
        "installed zips move out of the drop folder"
    assert [r["state"] for r in harness.registry.list()] == ["installed"]


def _no_wheels_zip(path: Path, name: str = "nowheels", padding: int = 0) -> Path:
    """A well-formed package zip without wheels: complete, it is rejected with 2004 (2001 if read early)."""
    entries = valid_entries(manifest_for(name=name))
    if padding:
        entries.append(("algo/blob.bin", os.urandom(padding)))
    return hostile_zip(path, entries)


def test_chunked_writer_that_closes_each_time_is_not_read_early(harness: Harness, tmp_path: Path) -> None:
    """Each chunk is a separate open/append/close: the size keeps changing, so the zip waits.
    Read early it would be an unreadable zip (2001); read complete it is a package without wheels (2004)."""
    src = _no_wheels_zip(tmp_path / "src" / "p.zip", padding=300_000)
    harness.watcher.start()
    _slow_copy(src, harness.drop / "p.zip", 2.0, reopen=True)
    harness.wait_results(1)
    outcome = harness.results[0][1]
    assert isinstance(outcome, RunnerError)
    assert outcome.code == "2004", outcome


def test_renamed_in_zip_is_rejected_visibly(harness: Harness, tmp_path: Path) -> None:
    harness.watcher.start()
    staged = _no_wheels_zip(harness.settings.layout.root / "incoming.zip.part")
    os.rename(staged, harness.drop / "pkg.zip")
    harness.wait_results(1)
    outcome = harness.results[0][1]
    assert isinstance(outcome, RunnerError) and outcome.code == "2004"
    rejected = harness.settings.layout.rejected
    assert (rejected / "pkg.zip").is_file() and not (harness.drop / "pkg.zip").exists()
    error = json.loads((rejected / "pkg.zip.error.json").read_text())
    assert error["code"] == "2004" and error["name"] == "wheels_missing" and error["message"]
    assert "details" in error
    record = harness.registry.require("nowheels", "1.0.0")
    assert record["state"] == "invalid" and record["last_error"]["code"] == "2004"


def test_part_file_renamed_in_place_is_picked_up(harness: Harness) -> None:
    """The usual upload pattern: write ``x.zip.part`` (ignored), then rename it to ``x.zip``."""
    harness.watcher.start()
    part = _no_wheels_zip(harness.drop / "up.zip.part", name="renamed")
    harness.settle()
    assert harness.installer.calls == [], "a .part file is never opened"
    os.rename(part, harness.drop / "up.zip")
    harness.wait_results(1)
    outcome = harness.results[0][1]
    assert isinstance(outcome, RunnerError) and outcome.code == "2004"
    assert harness.registry.require("renamed", "1.0.0")["state"] == "invalid"


def test_a_writer_that_pauses_mid_file_is_not_read_early(clocked_harness: Harness, clock: FakeClock,
                                                         tmp_path: Path) -> None:
    """Half the zip, then a pause longer than every quiet period: the central directory is not there
    yet, so the file is left alone; complete, it is a package without wheels (2004), not 2001."""
    harness = clocked_harness
    data = _no_wheels_zip(tmp_path / "src" / "p.zip", padding=200_000).read_bytes()
    harness.watcher.start()
    target = harness.drop / "paused.zip"
    with open(target, "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        wait_until(lambda: not harness.watcher.idle(), what="the watcher to see the half-written zip")
        # The pause, on the watcher's clock: far longer than the quiet period for files that were never
        # closed (4 x 0.5 s, at least 2 s) and than the grace for unreadable closed files (5 x 0.5 s).
        clock.advance(3600.0)
        # A pass may have been under way before the clock moved; the one after it saw the pause.
        seen = harness.watcher.passes
        wait_until(lambda: harness.watcher.passes >= seen + 2, what="the watcher to look again after the pause")
        assert harness.installer.calls == [], "a half-written zip was opened"
        handle.write(data[len(data) // 2:])

    def settled() -> bool:
        clock.advance(STABLE_S / 2)  # time passes for the closed, complete file
        return bool(harness.results)

    wait_until(settled, what="the completed zip to be processed")
    outcome = harness.results[0][1]
    assert isinstance(outcome, RunnerError) and outcome.code == "2004", outcome


def test_observer_death_is_followed_by_a_rescan(harness: Harness) -> None:
    harness.watcher.start()
    observer = harness.watcher.observer
    assert observer is not None
    observer.stop()
    observer.join(timeout=10)
    _no_wheels_zip(harness.drop / "while-blind.zip", name="blind")
    harness.wait_results(1)
    restarted = harness.watcher.observer
    assert restarted is not None and restarted is not observer and restarted.is_alive()
    outcome = harness.results[0][1]
    assert isinstance(outcome, RunnerError) and outcome.code == "2004"


def test_partial_names_and_dotfiles_are_ignored(harness: Harness, tmp_path: Path) -> None:
    assert is_in_progress_name("a.zip.part") and is_in_progress_name(".a.zip") and is_in_progress_name("a.tmp")
    assert not is_in_progress_name("notes.txt") and not is_zip_name("notes.txt") and is_zip_name("A.ZIP")
    for name in ("a.zip.part", ".hidden.zip", "b.zip.tmp"):
        (harness.drop / name).write_bytes(b"not a zip")
    harness.watcher.start()
    harness.settle()
    assert harness.results == [] and harness.installer.calls == []
    assert sorted(p.name for p in harness.drop.iterdir() if p.is_file()) == [".hidden.zip", "a.zip.part", "b.zip.tmp"]


def test_a_file_that_is_not_a_zip_is_rejected_visibly(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """A finished file with another name is moved to rejected/ with its reason, never installed."""
    caplog.set_level(logging.INFO, logger="runner.package")
    (harness.drop / "algo.tar.gz").write_bytes(b"a tarball, not a package zip")
    harness.watcher.start()
    harness.wait_results(1)
    outcome = harness.results[0][1]
    assert isinstance(outcome, RunnerError) and outcome.code == "2001" and "procvision-cli package" in outcome.message
    rejected = harness.settings.layout.rejected
    assert not (harness.drop / "algo.tar.gz").exists() and (rejected / "algo.tar.gz").is_file()
    reason = json.loads((rejected / "algo.tar.gz.error.json").read_text())
    assert reason["code"] == "2001" and "not a package" in reason["message"]
    assert harness.installer.calls == []
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("rejected algo.tar.gz" in m and "zips/rejected/algo.tar.gz" in m for m in lines), lines


def test_startup_scan_and_processed_once_by_hash(harness: Harness, tmp_path: Path) -> None:
    _no_wheels_zip(harness.drop / "first.zip")
    harness.watcher.start()
    harness.wait_results(1)
    assert not (harness.drop / "first.zip").exists()
    # The same bytes under another name: remembered by hash, not installed again, still moved aside.
    (harness.drop / "again.zip").write_bytes((harness.settings.layout.rejected / "first.zip").read_bytes())
    wait_until(lambda: (harness.settings.layout.rejected / "again.zip").exists(), what="again.zip rejected")
    harness.settle()
    assert len(harness.installer.calls) == 1 and len(harness.results) == 1


def test_garbage_named_zip_is_rejected_after_it_settles(harness: Harness) -> None:
    harness.watcher.start()
    (harness.drop / "garbage.zip").write_bytes(b"definitely not a zip" * 100)
    harness.wait_results(1)
    outcome = harness.results[0][1]
    assert isinstance(outcome, RunnerError) and outcome.code == "2001"
    assert (harness.settings.layout.rejected / "garbage.zip.error.json").is_file()


def test_stop_is_prompt_and_leaves_no_thread_running(harness: Harness) -> None:
    before = set(threading.enumerate())
    harness.watcher.start()
    # The watcher's threads (installer, file-system observer and its emitters), seen from outside.
    its_threads = set(threading.enumerate()) - before
    assert its_threads
    started = time.monotonic()
    harness.watcher.stop()
    assert time.monotonic() - started < 10  # a bound on a hang, not a speed goal
    assert [t.name for t in its_threads if t.is_alive()] == []


