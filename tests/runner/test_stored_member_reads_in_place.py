"""A stored zip member is read as a byte range of the archive (no re-read from the start per seek),
and anything that does not line up with the central directory is refused."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from runner.package.member_window import stored_member
from runner.package.wheels import nested_metadata_reader, parse_wheel_names

PAYLOAD = bytes(range(256)) * 400  # 100 KiB, every byte value


def _archive(path: Path, compress: int = zipfile.ZIP_STORED, name: str = "wheels/inner.bin") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", "{}", compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(name, PAYLOAD, compress_type=compress)
    return path


def test_a_stored_member_reads_and_seeks_like_the_member(tmp_path: Path) -> None:
    with zipfile.ZipFile(_archive(tmp_path / "a.zip")) as zf:
        reader = stored_member(zf, zf.getinfo("wheels/inner.bin"))
        assert reader is not None
        with reader:
            assert reader.read() == PAYLOAD
            assert reader.read() == b""
            assert reader.seek(-10, io.SEEK_END) == len(PAYLOAD) - 10
            assert reader.read() == PAYLOAD[-10:]
            reader.seek(1000)
            assert reader.read(5) == PAYLOAD[1000:1005]
            assert reader.tell() == 1005
            reader.seek(7, io.SEEK_CUR)
            assert reader.read(3) == PAYLOAD[1012:1015]
            with pytest.raises(OSError, match="before the start"):
                reader.seek(-1)


def test_a_compressed_member_is_left_to_zipfile(tmp_path: Path) -> None:
    with zipfile.ZipFile(_archive(tmp_path / "a.zip", zipfile.ZIP_DEFLATED)) as zf:
        assert stored_member(zf, zf.getinfo("wheels/inner.bin")) is None


def test_a_zip_read_from_memory_is_left_to_zipfile(tmp_path: Path) -> None:
    data = _archive(tmp_path / "a.zip").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert stored_member(zf, zf.getinfo("wheels/inner.bin")) is None


def test_a_local_header_naming_another_file_is_refused(tmp_path: Path) -> None:
    path = _archive(tmp_path / "a.zip")
    data = bytearray(path.read_bytes())
    name_at = data.index(b"wheels/inner.bin")  # the first copy is the local header's
    assert data[name_at:name_at + 16] == b"wheels/inner.bin"
    data[name_at:name_at + 6] = b"WHEELS"
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as zf, pytest.raises(zipfile.BadZipFile, match="names another file"):
        stored_member(zf, zf.getinfo("wheels/inner.bin"))


def test_a_member_past_the_end_of_the_archive_is_refused(tmp_path: Path) -> None:
    path = _archive(tmp_path / "a.zip")
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("wheels/inner.bin")
        info.compress_size = path.stat().st_size  # what a lying central directory would say
        with pytest.raises(zipfile.BadZipFile, match="past the end"):
            stored_member(zf, info)


def test_wheel_metadata_is_read_from_a_stored_wheel_in_place(tmp_path: Path) -> None:
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, "w") as inner:
        inner.writestr("demo/__init__.py", "")
        inner.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    outer = tmp_path / "pkg.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.writestr("wheels/demo-1.0-py3-none-any.whl", wheel.getvalue(), compress_type=zipfile.ZIP_STORED)
    with zipfile.ZipFile(outer) as zf:
        read = nested_metadata_reader(zf, {"demo-1.0-py3-none-any.whl": "wheels/demo-1.0-py3-none-any.whl"})
        metadata = read(parse_wheel_names(["demo-1.0-py3-none-any.whl"])[0])
    assert b"Name: demo" in metadata
