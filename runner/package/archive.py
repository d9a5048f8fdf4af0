"""Zip safety: check every entry of a package zip, and extract it with our own streaming loop.

Hostile archives are rejected, never "sanitised": an absolute path, a drive letter, a ``..`` segment,
a backslash, a symlink or device entry, a duplicate or case-colliding name, an encrypted entry, too
many entries, too many bytes or a suspicious compression ratio all end in RunnerError 2001
(invalid_zip) naming the entry. Sizes in the headers are only a first filter: extraction counts the
bytes it really writes and stops at the limit. Files are created with ``O_EXCL | O_NOFOLLOW`` so
nothing outside the destination can be touched, and exec bits are kept.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import PackageErrorCode, RunnerError

CHUNK = 1024 * 1024
#: Below this many uncompressed bytes an entry's compression ratio is not judged: small runs of
#: zeros (blank assets, empty tables) compress extremely well and are harmless.
RATIO_MIN_BYTES = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_SUPPORTED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_UNIX = 3
_DOS_DIR = 0x10
_DOS_REPARSE_POINT = 0x400


@dataclass(frozen=True)
class ArchiveLimits:
    """The limits a package zip must respect (from Settings)."""

    max_zip_bytes: int
    max_entries: int
    max_uncompressed_bytes: int
    max_ratio: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveLimits:
        return cls(settings.max_zip_bytes, settings.max_zip_entries, settings.max_uncompressed_bytes,
                   settings.max_compression_ratio)


def invalid(message: str, entry: str | None = None, **details: Any) -> RunnerError:
    """A 2001 invalid_zip error; ``entry`` (the offending member) goes into the details."""
    if entry is not None:
        details["entry"] = entry
    return RunnerError(PackageErrorCode.INVALID_ZIP, message, **details)


@contextmanager
def open_zip(path: Path, limits: ArchiveLimits) -> Iterator[zipfile.ZipFile]:
    """Open ``path`` as a zip (2001 if it is too big, missing, or has no readable central directory)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise invalid(f"cannot read {path.name}: {exc.strerror or exc}", path=str(path)) from exc
    if size > limits.max_zip_bytes:
        raise invalid(f"{path.name} is {size} bytes; the limit is {limits.max_zip_bytes} (max_zip_bytes)",
                      size=size, limit=limits.max_zip_bytes)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise invalid(f"{path.name} is not a readable zip archive ({exc}); rebuild it with procvision-cli "
                      "package", path=str(path)) from exc
    try:
        yield zf
    finally:
        zf.close()


def _entry_mode(info: zipfile.ZipInfo) -> tuple[str, int]:
    """('file' | 'dir' | the non-regular kind, permission bits)."""
    is_dir_name = info.filename.endswith("/")
    if info.create_system == _UNIX:
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == 0:  # no type recorded: trust the name
            return ("dir" if is_dir_name else "file"), stat.S_IMODE(mode)
        if stat.S_ISREG(kind):
            return ("file" if not is_dir_name else "a file entry named like a folder"), stat.S_IMODE(mode)
        if stat.S_ISDIR(kind):
            return ("dir" if is_dir_name else "a folder entry without a trailing '/'"), stat.S_IMODE(mode)
        names = {stat.S_IFLNK: "a symbolic link", stat.S_IFCHR: "a character device",
                 stat.S_IFBLK: "a block device", stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket"}
        return names.get(kind, f"a non-regular entry (type {kind:o})"), 0
    dos = info.external_attr & 0xFFFF
    if dos & _DOS_REPARSE_POINT:
        return "a reparse point (link)", 0
    if dos & _DOS_DIR and not is_dir_name:
        return "a folder entry without a trailing '/'", 0
    return ("dir" if is_dir_name else "file"), 0


def _check_name(info: zipfile.ZipInfo) -> None:
    raw = info.orig_filename
    if raw != info.filename:
        raise invalid(f"entry {raw!r} has a name with a NUL byte or a platform separator", raw)
    if not raw or raw == "/":
        raise invalid("the archive has an entry with an empty name", raw)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise invalid(f"entry {raw!r} has control characters in its name", raw)
    if "\\" in raw:
        raise invalid(f"entry {raw!r} uses a backslash; zip paths must use '/'", raw)
    if raw.startswith("/"):
        raise invalid(f"entry {raw!r} has an absolute path", raw)
    if _DRIVE.match(raw):
        raise invalid(f"entry {raw!r} starts with a drive letter", raw)
    parts = raw.rstrip("/").split("/")
    for part in parts:
        if part == "..":
            raise invalid(f"entry {raw!r} has a '..' segment that would escape the package folder", raw)
        if part in ("", "."):
            raise invalid(f"entry {raw!r} has an empty or '.' path segment", raw)


def check_entries(zf: zipfile.ZipFile, limits: ArchiveLimits) -> list[zipfile.ZipInfo]:
    """Check every entry's name, type, flags and declared sizes; returns the entries.

    Raises RunnerError 2001 naming the first offending entry. Reads only the central directory.
    """
    try:
        infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise invalid(f"corrupt central directory: {exc}") from exc
    if len(infos) > limits.max_entries:
        raise invalid(f"the archive has {len(infos)} entries; the limit is {limits.max_entries} "
                      "(max_zip_entries)", count=len(infos), limit=limits.max_entries)
    if not infos:
        raise invalid("the archive is empty")
    seen: dict[str, str] = {}
    files: set[str] = set()
    dirs: set[str] = set()
    declared = 0
    for info in infos:
        _check_name(info)
        name = info.filename
        kind, _mode = _entry_mode(info)
        if kind not in ("file", "dir"):
            raise invalid(f"entry {name!r} is {kind}; only regular files and folders are allowed", name,
                          kind=kind)
        if info.flag_bits & 0x1:
            raise invalid(f"entry {name!r} is encrypted; packages must not be password-protected", name)
        if info.compress_type not in _SUPPORTED_METHODS:
            raise invalid(f"entry {name!r} uses unsupported compression method {info.compress_type}", name,
                          method=info.compress_type)
        key = name.rstrip("/")
        folded = key.casefold()
        if folded in seen:
            other = seen[folded]
            what = "appears twice" if other.rstrip("/") == key else f"differs only in letter case from {other!r}"
            raise invalid(f"entry {name!r} {what}", name, other=other)
        seen[folded] = name
        (dirs if kind == "dir" else files).add(folded)
        declared += info.file_size
        if declared > limits.max_uncompressed_bytes:
            raise invalid(f"the archive declares more than {limits.max_uncompressed_bytes} uncompressed bytes "
                          f"(reached at entry {name!r}; max_uncompressed_bytes)", name,
                          limit=limits.max_uncompressed_bytes)
        _check_ratio(name, info.file_size, info.compress_size, limits)
    # Folders spelled in two letter cases ("algo/x" and "ALGO/y") merge on case-insensitive disks.
    spellings: dict[str, str] = {}
    for info in infos:
        parts = info.filename.rstrip("/").split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            other = spellings.setdefault(prefix.casefold(), prefix)
            if other != prefix:
                raise invalid(f"entry {info.filename!r} spells {prefix!r} differently from {other!r} "
                              "(names must not differ only in letter case)", info.filename, other=other)
    # A file whose path is also a folder prefix of another entry ("a" and "a/b") cannot be extracted.
    for folded_name in files:
        parts = folded_name.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in files:
                raise invalid(f"entry {seen[prefix]!r} is a file but {seen[folded_name]!r} uses it as a folder",
                              seen[prefix])
    return infos


def _check_ratio(name: str, produced: int, compressed: int, limits: ArchiveLimits) -> None:
    if produced <= RATIO_MIN_BYTES:
        return
    ratio = produced / max(compressed, 1)
    if ratio > limits.max_ratio:
        raise invalid(f"entry {name!r} expands {ratio:.0f}x (over max_compression_ratio "
                      f"{limits.max_ratio:g}); this looks like a zip bomb", name, ratio=round(ratio, 1),
                      limit=limits.max_ratio)


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int) -> bytes:
    """Read one small member fully (manifest, requirements): 2001 if it is larger than ``max_bytes``
    or fails its CRC."""
    try:
        with zf.open(info) as src:
            data = src.read(max_bytes + 1)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise invalid(f"entry {info.filename!r} cannot be read: {exc}", info.filename) from exc
    if len(data) > max_bytes:
        raise invalid(f"entry {info.filename!r} is larger than {max_bytes} bytes", info.filename)
    return data


def extract(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], dest: Path, limits: ArchiveLimits) -> int:
    """Extract checked ``infos`` into the existing empty folder ``dest``; returns bytes written.

    Counts real output while streaming and stops at ``max_uncompressed_bytes`` or at an entry whose
    real output exceeds the compression ratio limit. CRC errors are 2001 naming the entry. On error the
    partly written ``dest`` is left for the caller (a staging folder) to delete.
    """
    total = 0
    base = os.path.realpath(dest)
    for info in infos:
        target = os.path.join(base, *info.filename.rstrip("/").split("/"))
        kind, mode = _entry_mode(info)
        if kind == "dir":
            os.makedirs(target, mode=0o755, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if os.path.realpath(os.path.dirname(target)) != os.path.dirname(target):
            raise invalid(f"entry {info.filename!r} would be written through a link", info.filename)
        perms = 0o755 if mode & 0o111 else 0o644
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, perms)
        written = 0
        try:
            with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                while True:
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    written += len(chunk)
                    total += len(chunk)
                    if total > limits.max_uncompressed_bytes:
                        raise invalid(f"extracting {info.filename!r} went over max_uncompressed_bytes "
                                      f"({limits.max_uncompressed_bytes}); the sizes in the archive headers "
                                      "are wrong or the archive is too large", info.filename,
                                      limit=limits.max_uncompressed_bytes)
                    _check_ratio(info.filename, written, info.compress_size, limits)
                    out.write(chunk)
        except (zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError, ValueError) as exc:
            raise invalid(f"entry {info.filename!r} is corrupt: {exc}", info.filename) from exc
        # A zlib stream can be cut short without a CRC error when the header size is also wrong.
        if written != info.file_size:
            raise invalid(f"entry {info.filename!r} holds {written} bytes but its header says "
                          f"{info.file_size}", info.filename)
        os.chmod(target, perms)
    return total
