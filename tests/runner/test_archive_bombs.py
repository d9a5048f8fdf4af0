"""Archives that cost memory before any limit is checked, and overlapping-entry zip bombs, are refused
with 2001 before anything is extracted."""

from __future__ import annotations

import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from procvision_algorithm_sdk import zipsafety
from runner.config import Settings
from runner.errors import RunnerError
from runner.package import archive
from runner.package.installer import Installer
from runner.store.registry import Registry
from tests.support.crafted_zips import empty_entries_zip, end_records, quoted_overlap_bomb
from tests.support.packages import build_package, hostile_zip, root_is_clean, runtime_wheels

DEFAULTS = archive.ArchiveLimits.from_settings(Settings(root=Path("/nonexistent")))
MIB = 1024 * 1024


def _check(path: Path, limits: archive.ArchiveLimits = DEFAULTS) -> list[zipfile.ZipInfo]:
    with archive.open_zip(path, limits) as zf:
        return archive.check_entries(zf, limits)


def _peak_bytes(action: Callable[[], Any]) -> tuple[Any, int]:
    """(what ``action`` raised or returned, peak bytes Python allocated while it ran)."""
    tracemalloc.start()
    try:
        try:
            outcome: Any = action()
        except RunnerError as exc:
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- entry count and central-directory size are judged from the end records ------------------------


@pytest.mark.parametrize("claimed", [3_000_000, 2**63 - 1])
def test_claimed_entry_count_over_the_limit_is_refused_from_the_end_records(tmp_path: Path, claimed: int) -> None:
    """A small file whose zip64 end records claim millions of entries: refused without parsing them."""
    path = empty_entries_zip(tmp_path / "claims.zip", 10, claimed=claimed)
    error, peak = _peak_bytes(lambda: _check(path))
    assert isinstance(error, RunnerError) and error.code == "2001"
    assert f"claims {claimed} entries" in error.message and "max_zip_entries" in error.message
    assert error.details["count"] == claimed and error.details["limit"] == DEFAULTS.max_entries
    assert peak < 1 * MIB


def test_real_large_entry_count_is_refused_before_the_directory_is_parsed(tmp_path: Path) -> None:
    """200,000 real entries (18 MB, zip64 end records): parsing them all would take ~150 MB."""
    path = empty_entries_zip(tmp_path / "many.zip", 200_000)
    error, peak = _peak_bytes(lambda: _check(path))
    assert isinstance(error, RunnerError) and error.code == "2001" and error.details["count"] == 200_000
    assert peak < 50 * MIB, f"refusing it allocated {peak / MIB:.0f} MiB"


def test_directory_larger_than_its_claimed_entries_is_refused(tmp_path: Path) -> None:
    """End records claiming 5 entries over a directory of 200,000: zipfile would parse all of them,
    since it reads records until the claimed directory size is used up."""
    path = empty_entries_zip(tmp_path / "understated.zip", 200_000, claimed=5)
    error, peak = _peak_bytes(lambda: _check(path))
    assert isinstance(error, RunnerError) and error.code == "2001"
    assert "central directory" in error.message and error.details["count"] == 5
    assert peak < 50 * MIB, f"refusing it allocated {peak / MIB:.0f} MiB"


def test_directory_outside_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outside.zip"
    # 20,000 entries may need a 42 MB directory, but this file is far smaller than the claimed 2 MB.
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100 + end_records(20_000, 2_000_000, 0, zip64=True))
    with pytest.raises(RunnerError) as caught:
        _check(path)
    assert caught.value.code == "2001" and "outside the file" in caught.value.message


@pytest.mark.parametrize("zip64", [False, True])
def test_entry_count_at_the_limit_is_accepted(tmp_path: Path, zip64: bool) -> None:
    """The crafted archives are real zips: at the limit they pass, one more entry does not."""
    limits = archive.ArchiveLimits(10**9, 1000, 10**9, 200)
    path = empty_entries_zip(tmp_path / "at-limit.zip", 1000, zip64=zip64)
    with zipfile.ZipFile(path) as zf:
        assert len(zf.infolist()) == 1000 and zf.testzip() is None
    assert len(_check(path, limits)) == 1000
    with pytest.raises(RunnerError) as caught:
        _check(empty_entries_zip(tmp_path / "over.zip", 1001, zip64=zip64), limits)
    assert caught.value.details["count"] == 1001


# --- overlapping entries ------------------------------------------------------------------------------


def test_quoted_overlap_bomb_is_refused_naming_the_entry(tmp_path: Path) -> None:
    """300 entries share one kernel: 26 KB would write 300 MB, while no entry breaks the per-entry ratio."""
    path = quoted_overlap_bomb(tmp_path / "overlap.zip", files=300, kernel_bytes=1_000_000)
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert zf.read(infos[-2]) == infos[-1].FileHeader() + b"\0" * 1_000_000, "a working bomb"
        for info in infos:
            zipsafety.check_ratio(info.filename, info.file_size, info.compress_size, DEFAULTS)
        assert sum(i.file_size for i in infos) > 1000 * path.stat().st_size
    # The whole-archive ratio would also catch it; the overlap itself is the precise diagnosis.
    for limits in (DEFAULTS, archive.ArchiveLimits(10**10, 20000, 10**10, 200, max_total_ratio=10**6)):
        with pytest.raises(RunnerError) as caught:
            _check(path, limits)
        err = caught.value
        assert err.code == "2001" and err.details["entry"] == "f00000" and err.details["other"] == "f00001"
        assert "overlaps entry 'f00001'" in err.message and "zip-bomb" in err.message


def test_quoted_overlap_bomb_is_not_installed(tmp_path: Path) -> None:
    path = quoted_overlap_bomb(tmp_path / "overlap.zip", files=300, kernel_bytes=1_000_000)
    settings = Settings(root=tmp_path / "root")
    installer = Installer(settings, Registry(settings.layout))
    stages: list[str] = []
    with pytest.raises(RunnerError) as caught:
        installer.install(path, progress=stages.append)
    assert caught.value.code == "2001" and caught.value.details["entry"] == "f00000"
    assert stages == ["checking"] and root_is_clean(settings.layout.root) == []
    report = installer.validate(path)
    assert report["summary"]["status"] == "FAIL" and report["error"]["code"] == "2001"


def _patched(path: Path, old: bytes, new: bytes, occurrence: int = 0) -> Path:
    data = path.read_bytes()
    at = -1
    for _ in range(occurrence + 1):
        at = data.index(old, at + 1)
    path.write_bytes(data[:at] + new + data[at + len(old):])
    return path


def test_local_header_naming_another_entry_is_refused(tmp_path: Path) -> None:
    path = hostile_zip(tmp_path / "names.zip", [("aaa.txt", b"one"), ("bbb.txt", b"two")])
    _patched(path, b"bbb.txt", b"ccc.txt")  # the first occurrence is the local header
    with pytest.raises(RunnerError) as caught:
        _check(path)
    assert caught.value.code == "2001" and caught.value.details["entry"] == "bbb.txt"
    assert "local header names 'ccc.txt'" in caught.value.message


def test_local_header_with_other_sizes_is_refused(tmp_path: Path) -> None:
    path = hostile_zip(tmp_path / "sizes.zip", [("data.bin", b"x" * 1000)])
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("data.bin")
    local_size = info.compress_size.to_bytes(4, "little") + (1000).to_bytes(4, "little")
    _patched(path, local_size, info.compress_size.to_bytes(4, "little") + (999).to_bytes(4, "little"))
    with pytest.raises(RunnerError) as caught:
        _check(path)
    assert caught.value.details["entry"] == "data.bin" and "another CRC or size" in caught.value.message


def test_two_directory_records_sharing_one_local_header_are_refused(tmp_path: Path) -> None:
    """The classic full-overlap bomb: many central records point at the same data."""
    path = hostile_zip(tmp_path / "shared.zip", [("aaa.txt", b"one"), ("bbb.txt", b"two")])
    with zipfile.ZipFile(path) as zf:
        second = zf.getinfo("bbb.txt").header_offset
    # The central record's offset field is the last 4 bytes before its name.
    _patched(path, second.to_bytes(4, "little") + b"bbb.txt", (0).to_bytes(4, "little") + b"bbb.txt")
    with pytest.raises(RunnerError) as caught:
        _check(path)
    assert caught.value.code == "2001" and caught.value.details["entry"] == "bbb.txt"
    assert "local header names 'aaa.txt'" in caught.value.message


# --- whole-archive ratio --------------------------------------------------------------------------


def test_many_small_compressible_entries_are_bounded_by_the_total_ratio(tmp_path: Path) -> None:
    """40 MiB of zeros in 1 MiB entries (each too small to be judged alone) from a ~40 KB zip."""
    path = hostile_zip(tmp_path / "zeros.zip", [(f"blank{i:02d}.bin", b"\0" * MIB) for i in range(40)])
    with pytest.raises(RunnerError) as caught:
        _check(path)
    err = caught.value
    assert err.code == "2001" and "max_total_compression_ratio" in err.message
    assert err.details["limit"] == DEFAULTS.max_total_ratio
    relaxed = archive.ArchiveLimits(10**10, 20000, 10**10, 200, max_total_ratio=10**4)
    assert len(_check(path, relaxed)) == 40


def test_total_ratio_is_also_counted_while_extracting(tmp_path: Path) -> None:
    """Headers that understate the sizes are caught by the bytes really written."""
    path = hostile_zip(tmp_path / "zeros.zip", [(f"blank{i:02d}.bin", b"\0" * MIB) for i in range(40)])
    limits = archive.ArchiveLimits(10**10, 20000, 10**10, 200, max_total_ratio=50)
    (tmp_path / "out").mkdir()
    with archive.open_zip(path, limits) as zf, pytest.raises(RunnerError) as caught:
        archive.extract(zf, zf.infolist(), tmp_path / "out", limits)
    assert caught.value.code == "2001" and "max_total_compression_ratio" in caught.value.message
    assert sum(f.stat().st_size for f in (tmp_path / "out").iterdir()) < 40 * MIB


def test_total_ratio_setting_reaches_the_limits() -> None:
    settings = Settings(root=Path("/nonexistent"), max_total_compression_ratio=42)
    assert archive.ArchiveLimits.from_settings(settings).max_total_ratio == 42


def test_bundled_wheel_claiming_millions_of_entries_is_refused_cheaply(tmp_path: Path) -> None:
    """A wheel is a zip too: its metadata is read only after its own end records pass the limits."""
    (tmp_path / "w").mkdir()
    evil = empty_entries_zip(tmp_path / "w" / "evil-1.0-py3-none-any.whl", 200_000)
    path = build_package(tmp_path / "src", wheels=[*runtime_wheels(), evil],
                         requirements="procvision-algorithm-sdk\nnumpy\nevil\n")
    settings = Settings(root=tmp_path / "root")
    installer = Installer(settings, Registry(settings.layout))
    error, peak = _peak_bytes(lambda: installer.validate(path))
    assert error["summary"]["status"] == "FAIL", "validate reports, it does not raise"
    assert error["error"]["code"] == "2001" and error["error"]["details"]["entry"] == f"wheels/{evil.name}"
    assert "claims 200000 entries" in error["error"]["message"]
    assert peak < 50 * MIB, f"refusing it allocated {peak / MIB:.0f} MiB"
