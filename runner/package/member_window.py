"""A stored (uncompressed) zip member as a seekable file of its own.

Reading a wheel's metadata while the wheel is still inside the package zip means opening the wheel
as a zip too, which seeks to its end and back. ``zipfile`` serves a backward seek in a member by
reading it again from the start, checksumming every byte: for a 16 MB numpy wheel that was 60 ms per
install (150 ms with both cores busy), spent before anything else could start. A stored member is
just a byte range of the outer file, so this reads that range with ``pread`` instead. The member's
CRC is still checked where its bytes are used: extraction and the hash check read it in full.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_MAGIC = b"PK\x03\x04"


class _Window(io.RawIOBase):
    """Bytes ``start .. start + size`` of an open file descriptor, read with ``pread``."""

    def __init__(self, fd: int, start: int, size: int) -> None:
        super().__init__()
        self._fd, self._start, self._size, self._pos = fd, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(f"seek to {base + offset}, before the start of the member")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        data = os.pread(self._fd, want, self._start + self._pos)
        memoryview(buffer)[:len(data)] = data
        self._pos += len(data)
        return len(data)


def stored_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> io.BufferedReader | None:
    """A seekable reader of ``info``'s bytes if the member is stored and ``zf`` reads a real file;
    None otherwise (the caller then uses ``zf.open``). Raises zipfile.BadZipFile for a local header
    that does not match the central directory's entry or a range past the end of the file."""
    handle = getattr(zf, "fp", None)
    if info.compress_type != zipfile.ZIP_STORED or handle is None or info.flag_bits & 0x1:
        return None
    try:
        fd = handle.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    header = os.pread(fd, _LOCAL_HEADER.size, info.header_offset)
    if len(header) != _LOCAL_HEADER.size:
        raise zipfile.BadZipFile(f"{info.filename}: the local header is cut off")
    fields = _LOCAL_HEADER.unpack(header)
    if fields[0] != _LOCAL_MAGIC:
        raise zipfile.BadZipFile(f"{info.filename}: bad local header magic")
    name_length, extra_length = fields[10], fields[11]
    name = os.pread(fd, name_length, info.header_offset + _LOCAL_HEADER.size)
    if name != info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437"):
        raise zipfile.BadZipFile(f"{info.filename}: the local header names another file")
    start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    if start + info.compress_size > os.fstat(fd).st_size:
        raise zipfile.BadZipFile(f"{info.filename}: the member runs past the end of the archive")
    return io.BufferedReader(_Window(fd, start, info.compress_size), buffer_size=64 * 1024)


__all__ = ["stored_member"]
