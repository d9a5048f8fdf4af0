"""Hostile zips built byte by byte (``zipfile`` cannot write them): archives that claim or hold huge
entry counts, overlapping-entry ("quoted overlap") bombs and entries whose local header lies."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_EOCD = struct.Struct("<4s4H2LH")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR = struct.Struct("<4sLQL")
_DOS_DATE = (2024 - 1980) << 9 | 1 << 5 | 1
_STORED, _DEFLATED = 0, 8


def _local(name: bytes, method: int, crc: int, csize: int, usize: int) -> bytes:
    return _LOCAL.pack(b"PK\x03\x04", 20, 0, 0, method, 0, _DOS_DATE, crc, csize, usize, len(name), 0) + name


def _central(name: bytes, method: int, crc: int, csize: int, usize: int, offset: int) -> bytes:
    return _CENTRAL.pack(b"PK\x01\x02", 20, 3, 20, 0, 0, method, 0, _DOS_DATE, crc, csize, usize, len(name),
                         0, 0, 0, 0, 0o100644 << 16, offset) + name


def end_records(entries: int, directory_size: int, directory_offset: int, *, zip64: bool) -> bytes:
    """EOCD (preceded by a zip64 record and locator when ``zip64``) for a directory ending right here."""
    if not zip64:
        return _EOCD.pack(b"PK\x05\x06", 0, 0, entries, entries, directory_size, directory_offset, 0)
    record_at = directory_offset + directory_size
    return (_EOCD64.pack(b"PK\x06\x06", _EOCD64.size - 12, 45, 45, 0, 0, entries, entries, directory_size,
                         directory_offset)
            + _LOCATOR.pack(b"PK\x06\x07", 0, record_at, 1)
            + _EOCD.pack(b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))


def empty_entries_zip(path: Path, count: int, *, claimed: int | None = None, zip64: bool = False) -> Path:
    """A zip of ``count`` empty stored files ``0000000``, ``0000001``...; the end records (zip64 when
    needed or asked for) claim ``claimed`` entries (default: ``count``)."""
    claimed = count if claimed is None else claimed
    crc = zlib.crc32(b"")

    def names() -> Iterator[bytes]:
        return (b"%07d" % i for i in range(count))

    with open(path, "wb") as out:
        out.write(b"".join(_local(n, _STORED, crc, 0, 0) for n in names()))
        directory_offset = out.tell()
        per_local = _LOCAL.size + 7
        out.write(b"".join(_central(n, _STORED, crc, 0, 0, i * per_local) for i, n in enumerate(names())))
        directory_size = out.tell() - directory_offset
        zip64 = zip64 or claimed >= 0xFFFF or count >= 0xFFFF
        out.write(end_records(claimed, directory_size, directory_offset, zip64=zip64))
    return path


def _quote(header: bytes) -> bytes:
    """A non-final stored deflate block whose literal bytes are ``header`` (which follows it)."""
    return b"\x00" + struct.pack("<2H", len(header), len(header) ^ 0xFFFF)


def quoted_overlap_bomb(path: Path, files: int, kernel_bytes: int) -> Path:
    """An overlapping-entry zip bomb: one deflate kernel (``kernel_bytes`` zeros) shared by ``files``
    entries. Entry i's data is a stored deflate block quoting entry i+1's local header, then entry i+1's
    data, so every entry decompresses to the following headers plus the kernel while its own ratio
    stays modest. Central records and local headers agree; only the data ranges overlap."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    kernel = compressor.compress(b"\0" * kernel_bytes) + compressor.flush()
    zeros = b"\0" * kernel_bytes
    names = [b"f%05d" % i for i in range(files)]
    # Built back to front: each entry's output starts with the next entry's header, so that header's
    # CRC and sizes must be known first.
    headers: list[bytes] = [b""] * files
    records: list[tuple[int, int, int]] = [(0, 0, 0)] * files
    data_size = len(kernel)  # physical bytes from the entry's data start to the kernel's end
    for i in range(files - 1, -1, -1):
        if i < files - 1:
            data_size += len(_quote(headers[i + 1])) + len(headers[i + 1])
        quoted = b"".join(headers[i + 1:])
        crc = zlib.crc32(zeros, zlib.crc32(quoted))
        records[i] = (crc, data_size, len(quoted) + kernel_bytes)
        headers[i] = _local(names[i], _DEFLATED, *records[i])
    body = bytearray()
    offsets = []
    for i, header in enumerate(headers):
        if i:
            body += _quote(header)
        offsets.append(len(body))
        body += header
    body += kernel
    directory = b"".join(_central(names[i], _DEFLATED, *records[i], offsets[i]) for i in range(files))
    path.write_bytes(bytes(body) + directory + end_records(files, len(directory), len(body), zip64=False))
    return path
