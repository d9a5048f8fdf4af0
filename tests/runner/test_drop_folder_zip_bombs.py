"""A zip dropped into the drop folder is judged by its end records alone before it reaches the
installer: a central directory of hundreds of thousands of entries is never parsed by the watcher,
and the installer refuses it (2001) before parsing it either."""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.package.installer import Installer, InstallResult
from runner.package.watcher import DropFolderWatcher
from runner.store.registry import Registry
from tests.support.crafted_zips import empty_entries_zip
from tests.support.waiting import wait_until

#: What the check of one dropped zip may allocate; parsing 200,000 entries takes several times this.
MEMORY_BOUND = 50 * 1024 * 1024


@pytest.mark.parametrize(("count", "claimed"), [(200_000, None), (2_000, 3_000_000)])
def test_dropped_zip_with_a_huge_directory_is_refused_without_parsing_it(tmp_path: Path, count: int,
                                                                         claimed: int | None) -> None:
    settings = Settings(root=tmp_path / "root", uv_cache_dir=tmp_path / "uv", drop_stable_s=0.2,
                        max_zip_entries=20_000)
    settings.layout.ensure()
    results: list[tuple[Path, InstallResult | RunnerError]] = []
    done = threading.Event()

    def on_result(path: Path, outcome: InstallResult | RunnerError) -> None:
        results.append((path, outcome))
        done.set()

    bomb = empty_entries_zip(tmp_path / "bomb.zip", count, claimed=claimed)
    watcher = DropFolderWatcher(settings, Installer(settings, Registry(settings.layout)), on_result)
    tracemalloc.start()
    try:
        watcher.start()
        bomb.rename(settings.layout.zips / "bomb.zip")
        wait_until(done.is_set, 120, "the dropped zip to be judged")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        watcher.stop()
    (path, outcome), = results
    assert isinstance(outcome, RunnerError) and outcome.code == "2001", outcome
    assert "entries" in outcome.message
    assert peak < MEMORY_BOUND, f"peak {peak / 2**20:.1f} MiB while judging {path.name}"
    assert (settings.layout.rejected / "bomb.zip.error.json").is_file()
