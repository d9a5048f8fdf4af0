"""Each entry's bytes must be its own: local headers agree with the central directory and no two
entries' data overlap.

Overlapping entries are how "quoted overlap" zip bombs (one deflate kernel shared by thousands of
entries, each quoting the next entry's local header) multiply their output while every single entry
keeps a modest compression ratio. A well-formed zip lays out local header, data, [data descriptor]
for each entry, one after the other, then the central directory; anything else is refused.
"""

from __future__ import annotations

import struct
import zipfile
from typing import IO

from .limits import ZipProblem

_LOCAL = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIG = b"PK\x03\x04"
_ZIP64_EXTRA = 0x0001
_MASK32 = 0xFFFFFFFF
_DESCRIPTOR_FLAG = 0x08
_UTF8_FLAG = 0x800


def _zip64_sizes(extra: bytes, file_size: int, compress_size: int) -> tuple[int, int]:
    """Real (file_size, compress_size) of a local header whose 32-bit fields are 0xFFFFFFFF."""
    at = 0
    while at + 4 <= len(extra):
        tag, size = struct.unpack_from("<2H", extra, at)
        body = extra[at + 4:at + 4 + size]
        if tag == _ZIP64_EXTRA:
            values = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            if file_size == _MASK32 and values:
                file_size = values.pop(0)
            if compress_size == _MASK32 and values:
                compress_size = values.pop(0)
            break
        at += 4 + size
    return file_size, compress_size


def _data_start(fp: IO[bytes], info: zipfile.ZipInfo) -> int:
    """Offset of the entry's data, after checking its local header against the central record."""
    name = info.orig_filename
    fp.seek(info.header_offset)
    header = fp.read(_LOCAL.size)
    if len(header) != _LOCAL.size or header[:4] != _LOCAL_SIG:
        raise ZipProblem(f"entry {name!r} has no local header where the central directory says it starts",
                         name, offset=info.header_offset)
    (_sig, _ver, _os, flags, method, _time, _date, crc, csize, usize, name_len,
     extra_len) = _LOCAL.unpack(header)
    raw_name = fp.read(name_len)
    extra = fp.read(extra_len)
    if len(raw_name) != name_len or len(extra) != extra_len:
        raise ZipProblem(f"entry {name!r} has a truncated local header", name)
    local_name = raw_name.decode("utf-8" if flags & _UTF8_FLAG else "cp437", "replace")
    problems = []
    if local_name != name:
        problems.append(f"its local header names {local_name!r}")
    if method != info.compress_type:
        problems.append(f"compression method {method} in the local header, {info.compress_type} in the directory")
    if (flags & 0x1) != (info.flag_bits & 0x1):
        problems.append("the encryption flags differ")
    if not flags & _DESCRIPTOR_FLAG:  # sizes and CRC are in the local header itself
        usize, csize = _zip64_sizes(extra, usize, csize)
        if crc != info.CRC or csize != info.compress_size or usize != info.file_size:
            problems.append("its local header gives another CRC or size")
    if problems:
        raise ZipProblem(f"entry {name!r} disagrees with its central directory record: {'; '.join(problems)}",
                         name)
    return info.header_offset + _LOCAL.size + name_len + extra_len


def check_data_ranges(fp: IO[bytes], infos: list[zipfile.ZipInfo], directory_start: int) -> None:
    """ZipProblem naming the entry whose local header disagrees with its central record, or whose
    data overlaps the next entry or the central directory. Reads one local header per entry."""
    starts = {id(info): _data_start(fp, info) for info in infos}
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for info, following in zip(ordered, [*ordered[1:], None]):
        end = starts[id(info)] + info.compress_size
        limit = following.header_offset if following is not None else directory_start
        if end > limit:
            other = f"entry {following.orig_filename!r}" if following is not None else "the central directory"
            raise ZipProblem(f"entry {info.orig_filename!r} overlaps {other}: its data ends at byte {end} but "
                             f"{other} starts at byte {limit}; overlapping entries are a zip-bomb technique",
                             info.orig_filename, other=following.orig_filename if following else None)
