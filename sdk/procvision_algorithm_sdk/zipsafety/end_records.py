"""Read a zip's end records (classic and zip64) and judge its claims before anything else is read.

``zipfile.ZipFile`` reads the whole central directory into memory and builds one ``ZipInfo`` per
record before anyone can count them, so a hostile archive claiming millions of entries costs
gigabytes. The end records say how many entries and how many directory bytes follow; checking those
first keeps the cost of refusing such an archive to a few kilobytes. The records are located exactly
as ``zipfile`` locates them, so the numbers checked are the numbers it would use.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import IO

from .limits import ZipLimits, ZipProblem

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIG = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sLQL")
_LOCATOR_SIG = b"PK\x06\x07"
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_EOCD64_SIG = b"PK\x06\x06"
_MAX_COMMENT = 1 << 16


@dataclass(frozen=True)
class EndRecord:
    """What the end records claim. ``directory_start`` is where the central directory really
    begins in the file (bytes prepended to the archive shift it, as ``zipfile`` allows)."""

    entries: int
    directory_size: int
    directory_start: int
    file_size: int
    zip64: bool


def _zip64(fp: IO[bytes], eocd_at: int) -> tuple[int, int, int] | None:
    """(entries, directory size, directory offset) from the zip64 record before the locator."""
    locator_at = eocd_at - _LOCATOR.size
    record_at = locator_at - _EOCD64.size
    if record_at < 0:
        return None
    fp.seek(locator_at)
    data = fp.read(_LOCATOR.size)
    if len(data) != _LOCATOR.size:
        return None
    sig, disk, _offset, disks = _LOCATOR.unpack(data)
    if sig != _LOCATOR_SIG:
        return None
    if disk != 0 or disks > 1:
        raise ZipProblem("the archive spans several disks; only single-file zips are supported")
    fp.seek(record_at)
    data = fp.read(_EOCD64.size)
    if len(data) != _EOCD64.size:
        return None
    sig, _size, _made, _needed, _disk, _disk_dir, _here, total, dir_size, dir_offset = _EOCD64.unpack(data)
    if sig != _EOCD64_SIG:
        return None
    return total, dir_size, dir_offset


def read_end_record(fp: IO[bytes]) -> EndRecord:
    """The end records of the open zip ``fp`` (ZipProblem if there are none)."""
    file_size = fp.seek(0, os.SEEK_END)
    if file_size < _EOCD.size:
        raise ZipProblem("the file is too short to be a zip archive")
    fp.seek(file_size - _EOCD.size)
    tail = fp.read(_EOCD.size)
    if tail[:4] == _EOCD_SIG and tail[-2:] == b"\0\0":
        eocd_at, record = file_size - _EOCD.size, tail
    else:
        # An archive comment follows the record: search the last 64 KiB, last signature wins.
        search_from = max(file_size - _MAX_COMMENT - _EOCD.size, 0)
        fp.seek(search_from)
        window = fp.read()
        found = window.rfind(_EOCD_SIG)
        record = window[found:found + _EOCD.size] if found >= 0 else b""
        if len(record) != _EOCD.size:
            raise ZipProblem("no end-of-central-directory record: this is not a zip archive (or it is cut short)")
        eocd_at = search_from + found
    _sig, _disk, _disk_dir, _here, entries, dir_size, dir_offset, _comment = _EOCD.unpack(record)
    start = eocd_at - dir_size - dir_offset
    zip64 = _zip64(fp, eocd_at)
    if zip64 is not None:
        entries, dir_size, dir_offset = zip64
        start = eocd_at - _LOCATOR.size - _EOCD64.size - dir_size - dir_offset
    return EndRecord(entries=entries, directory_size=dir_size, directory_start=start + dir_offset,
                     file_size=file_size, zip64=zip64 is not None)


def check_end_record(end: EndRecord, limits: ZipLimits) -> None:
    """Refuse an archive whose end records claim too many entries or an oversized or impossible
    central directory (ZipProblem), before any directory record is read."""
    if end.entries > limits.max_entries:
        raise ZipProblem(f"the archive claims {end.entries} entries; the limit is {limits.max_entries} "
                         "(max_zip_entries)", count=end.entries, limit=limits.max_entries)
    allowed = limits.max_directory_bytes(end.entries)
    if end.directory_size > allowed:
        raise ZipProblem(f"the archive's central directory is {end.directory_size} bytes, more than "
                         f"{end.entries} entries can need ({allowed} bytes); the archive is corrupt or hostile",
                         directory_size=end.directory_size, count=end.entries)
    if end.directory_start < 0 or end.directory_start + end.directory_size > end.file_size:
        raise ZipProblem("the archive's central directory lies outside the file; the archive is corrupt",
                         directory_size=end.directory_size)
