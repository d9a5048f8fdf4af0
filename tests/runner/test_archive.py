"""Archive safety: a corpus of hostile and broken zips, each rejected with 2001 and leaving nothing behind."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.package import archive
from runner.package.installer import Installer
from runner.store.registry import Registry
from tests.support.packages import build_package, hostile_zip, raw_entry, root_is_clean, set_entry_flags, valid_entries

REG = stat.S_IFREG | 0o644


def _installer(tmp_path: Path, **overrides: Any) -> Installer:
    settings = Settings(root=tmp_path / "root", **overrides)
    return Installer(settings, Registry(settings.layout))


def _install_fails(installer: Installer, zip_path: Path, code: str) -> RunnerError:
    stages: list[str] = []
    with pytest.raises(RunnerError) as info:
        installer.install(zip_path, progress=stages.append)
    err = info.value
    assert err.code == code, err
    assert stages == ["checking"], "a hostile zip must be refused before extraction starts"
    assert root_is_clean(installer.layout.root) == []
    return err


def _with(tmp_path: Path, *extra: tuple[zipfile.ZipInfo | str, bytes]) -> Path:
    return hostile_zip(tmp_path / "pkg.zip", [*valid_entries(), *extra])


HOSTILE: dict[str, tuple[zipfile.ZipInfo | str, bytes]] = {
    "absolute": ("/etc/evil.py", b"x"),
    "drive_letter": ("C:/evil.py", b"x"),
    "dotdot": ("../evil.py", b"x"),
    "nested_dotdot": ("algo/../../evil.py", b"x"),
    "backslash": ("algo\\evil.py", b"x"),
    "dot_segment": ("algo/./evil.py", b"x"),
    "empty_segment": ("algo//evil.py", b"x"),
    "symlink": (raw_entry("algo/link.py", stat.S_IFLNK | 0o777), b"/etc/passwd"),
    "char_device": (raw_entry("algo/dev", stat.S_IFCHR | 0o644), b""),
    "fifo": (raw_entry("algo/fifo", stat.S_IFIFO | 0o644), b""),
    "dir_without_slash": (raw_entry("algo/sub", stat.S_IFDIR | 0o755), b""),
    "dos_reparse_point": (raw_entry("algo/junction", None, create_system=0), b""),
    "duplicate": ("algo/main.py", b"print('second copy')"),
    "case_collision": ("algo/MAIN.py", b"x"),
    "folder_case_collision": ("ALGO/other.py", b"x"),
    "file_as_folder": ("algo/main.py/inner.py", b"x"),
    "control_char": ("algo/ev\x01il.py", b"x"),
    "reserved_venv": ("venv/bin/python", b"x"),
}
HOSTILE["dos_reparse_point"][0].external_attr = 0x400  # type: ignore[union-attr]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_entry_is_rejected_and_named(tmp_path: Path, case: str) -> None:
    entry, data = HOSTILE[case]
    err = _install_fails(_installer(tmp_path), _with(tmp_path, (entry, data)), "2001")
    name = entry.filename if isinstance(entry, zipfile.ZipInfo) else entry
    named = str(err.details.get("entry", ""))
    # The offending entry is named in the details (the reserved-name check names the top folder).
    assert named and (named == name or name.startswith(named)), err.details
    assert named.split("/")[0] in err.message or repr(named) in err.message or named in err.message


def test_encrypted_entry(tmp_path: Path) -> None:
    path = _with(tmp_path, ("algo/secret.py", b"x"))
    set_entry_flags(path, "algo/secret.py", 0x1)
    err = _install_fails(_installer(tmp_path), path, "2001")
    assert err.details["entry"] == "algo/secret.py" and "encrypted" in err.message


def test_too_many_entries(tmp_path: Path) -> None:
    extra = [(f"algo/f{i}.py", b"") for i in range(10)]
    err = _install_fails(_installer(tmp_path, max_zip_entries=8), _with(tmp_path, *extra), "2001")
    assert "max_zip_entries" in err.message


def test_total_uncompressed_over_limit(tmp_path: Path) -> None:
    err = _install_fails(_installer(tmp_path, max_uncompressed_bytes=50_000),
                         _with(tmp_path, ("algo/big.bin", bytes(range(256)) * 400)), "2001")
    assert err.details["entry"] == "algo/big.bin"


def test_compression_ratio_over_limit(tmp_path: Path) -> None:
    err = _install_fails(_installer(tmp_path), _with(tmp_path, ("algo/zeros.bin", b"\0" * (8 * 1024 * 1024))), "2001")
    assert err.details["entry"] == "algo/zeros.bin"
    assert "zip bomb" in err.message


def test_zip_file_over_max_zip_bytes(tmp_path: Path) -> None:
    err = _install_fails(_installer(tmp_path, max_zip_bytes=200), _with(tmp_path), "2001")
    assert "max_zip_bytes" in err.message


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "pkg.zip"
    path.write_bytes(b"this is not a zip file at all" * 10)
    _install_fails(_installer(tmp_path), path, "2001")


def test_corrupt_central_directory(tmp_path: Path) -> None:
    path = _with(tmp_path)
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    cd_offset = int.from_bytes(data[end + 16:end + 20], "little")
    data[cd_offset:cd_offset + 4] = b"XXXX"  # break the first central directory record
    path.write_bytes(bytes(data))
    _install_fails(_installer(tmp_path), path, "2001")


def test_bad_crc_in_a_wheel_is_2001(tmp_path: Path) -> None:
    """Central directory and manifest are fine, a wheel's bytes are not: 2001 naming the wheel, staging
    removed, the version recorded invalid (its name was known)."""
    path = build_package(tmp_path / "src")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        wheel = next(i for i in zf.infolist() if i.filename.startswith("wheels/numpy"))
    # Inside the stored numpy wheel, far from its metadata: only a full read (extraction) sees it.
    at = wheel.header_offset + 30 + len(wheel.filename.encode()) + wheel.compress_size // 3
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    installer = _installer(tmp_path)
    stages: list[str] = []
    with pytest.raises(RunnerError) as caught:
        installer.install(path, progress=stages.append)
    assert caught.value.code == "2001", caught.value
    assert caught.value.details["entry"] == wheel.filename
    # Reading the wheel's metadata through the seekable member may already hit the CRC.
    assert stages in (["checking"], ["checking", "extracting"])
    assert root_is_clean(installer.layout.root) == []
    record = installer.registry.get("demo_algo", "1.0.0")
    assert record is not None and record["state"] == "invalid" and record["last_error"]["code"] == "2001"


def test_bad_crc_in_extract(tmp_path: Path) -> None:
    path = hostile_zip(tmp_path / "p.zip", [(raw_entry("a.bin", REG, compress=zipfile.ZIP_STORED), b"A" * 4096)])
    data = bytearray(path.read_bytes())
    data[data.find(b"A" * 4096) + 100] = ord("B")
    path.write_bytes(bytes(data))
    dest = tmp_path / "out"
    dest.mkdir()
    limits = archive.ArchiveLimits(10**9, 100, 10**9, 10**9)
    with zipfile.ZipFile(path) as zf, pytest.raises(RunnerError) as caught:
        archive.extract(zf, archive.check_entries(zf, limits), dest, limits)
    assert caught.value.code == "2001" and caught.value.details["entry"] == "a.bin"


def test_header_sizes_are_not_trusted_while_streaming(tmp_path: Path) -> None:
    """extract() counts real bytes: a limit below the real total stops the extraction."""
    path = hostile_zip(tmp_path / "p.zip", [("a.bin", b"x" * 3_000_000), ("b.bin", b"y" * 3_000_000)])
    limits = archive.ArchiveLimits(max_zip_bytes=10**9, max_entries=100, max_uncompressed_bytes=4_000_000,
                                   max_ratio=10**9)
    dest = tmp_path / "out"
    dest.mkdir()
    with zipfile.ZipFile(path) as zf, pytest.raises(RunnerError) as caught:
        archive.extract(zf, zf.infolist(), dest, limits)
    assert caught.value.code == "2001"
    assert caught.value.details["entry"] == "b.bin"
    written = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    assert written <= 4_000_000


def test_lying_header_size_is_caught(tmp_path: Path) -> None:
    """A central directory that understates an entry's size fails the CRC/size check: 2001."""
    path = hostile_zip(tmp_path / "p.zip", [(raw_entry("a.bin", REG, compress=zipfile.ZIP_STORED), b"z" * 5000)])
    data = bytearray(path.read_bytes())
    # Patch both the local header and the central directory: uncompressed size 5000 -> 100.
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(sig)
        data[at + offset:at + offset + 4] = (100).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    dest = tmp_path / "out"
    dest.mkdir()
    limits = archive.ArchiveLimits(10**9, 100, 10**9, 10**9)
    with zipfile.ZipFile(path) as zf, pytest.raises(RunnerError) as caught:
        archive.extract(zf, archive.check_entries(zf, limits), dest, limits)
    assert caught.value.code == "2001"


def test_extract_keeps_exec_bits_and_refuses_existing_files(tmp_path: Path) -> None:
    path = hostile_zip(tmp_path / "p.zip", [(raw_entry("bin/run.sh", stat.S_IFREG | 0o755), b"#!/bin/sh\n"),
                                            (raw_entry("data.txt", REG), b"x")])
    limits = archive.ArchiveLimits(10**9, 100, 10**9, 200)
    dest = tmp_path / "out"
    dest.mkdir()
    with zipfile.ZipFile(path) as zf:
        archive.extract(zf, archive.check_entries(zf, limits), dest, limits)
    assert (dest / "bin/run.sh").stat().st_mode & 0o111
    assert not (dest / "data.txt").stat().st_mode & 0o111
    # Extracting again into the same place never overwrites (O_EXCL).
    with zipfile.ZipFile(path) as zf, pytest.raises(FileExistsError):
        archive.extract(zf, zf.infolist(), dest, limits)


def test_small_highly_compressible_files_are_fine(tmp_path: Path) -> None:
    path = hostile_zip(tmp_path / "p.zip", [("blank.bin", b"\0" * 500_000)])
    limits = archive.ArchiveLimits(10**9, 100, 10**9, 200)
    with zipfile.ZipFile(path) as zf:
        assert len(archive.check_entries(zf, limits)) == 1
