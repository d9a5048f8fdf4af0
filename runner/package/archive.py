"""Zip safety: check every entry of a package zip, and extract it with our own streaming loop.

Hostile archives are rejected, never "sanitised". The rules themselves live in the SDK
(``procvision_algorithm_sdk.zipsafety``) so ``procvision-cli validate --zip`` refuses exactly what a
station refuses; here every ``ZipProblem`` becomes RunnerError 2001 (invalid_zip) naming the entry. The
end records are judged before the central directory is parsed (claimed entry count and directory
size), then names, types, flags, declared sizes, per-entry and whole-archive ratios, then local headers
and data ranges (no overlapping entries). Sizes in the headers are only a first filter: extraction
counts the bytes it really writes and stops at the limits. Files are created with
``O_EXCL | O_NOFOLLOW`` so nothing outside the destination can be touched, and exec bits are kept.
"""

from __future__ import annotations

import errno
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk import zipsafety
from procvision_algorithm_sdk.zipsafety import ZipLimits, ZipProblem

from ..config import Settings
from ..errors import PackageErrorCode, RunnerError

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ArchiveLimits(ZipLimits):
    """The limits a package zip must respect (from Settings)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveLimits:
        return cls(settings.max_zip_bytes, settings.max_zip_entries, settings.max_uncompressed_bytes,
                   settings.max_compression_ratio, settings.max_total_compression_ratio)


def invalid(message: str, entry: str | None = None, **details: Any) -> RunnerError:
    """A 2001 invalid_zip error; ``entry`` (the offending member) goes into the details."""
    if entry is not None:
        details["entry"] = entry
    return RunnerError(PackageErrorCode.INVALID_ZIP, message, **details)


def _from_problem(problem: ZipProblem) -> RunnerError:
    return invalid(problem.message, problem.entry, **problem.details)


@contextmanager
def open_zip(path: Path, limits: ZipLimits) -> Iterator[zipfile.ZipFile]:
    """Open ``path`` as a zip: 2001 if it is too big, missing, has no readable end records, or its end
    records claim too many entries or an oversized central directory (judged before it is parsed)."""
    try:
        zf = zipsafety.open_zip(path, limits)
    except ZipProblem as problem:
        raise _from_problem(problem) from problem
    try:
        yield zf
    finally:
        zf.close()


def check_entries(zf: zipfile.ZipFile, limits: ZipLimits) -> list[zipfile.ZipInfo]:
    """Check every entry (names, types, flags, declared sizes and ratios, local headers, overlapping
    data); returns the entries. Raises RunnerError 2001 naming the first offending entry."""
    try:
        return zipsafety.check_archive(zf, limits)
    except ZipProblem as problem:
        raise _from_problem(problem) from problem


def _archive_bytes(zf: zipfile.ZipFile) -> int:
    if zf.fp is None:
        raise ValueError("the zip file is closed")
    return os.fstat(zf.fp.fileno()).st_size


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


def extract(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], dest: Path, limits: ZipLimits) -> int:
    """Extract checked ``infos`` into the existing empty folder ``dest``; returns bytes written.

    Counts real output while streaming and stops at ``max_uncompressed_bytes``, at an entry whose real
    output exceeds the compression ratio limit, or when the whole output exceeds the total ratio. CRC
    errors are 2001 naming the entry. On error the partly written ``dest`` is left for the caller (a
    staging folder) to delete.
    """
    total = 0
    archive_bytes = _archive_bytes(zf)
    base = os.path.realpath(dest)
    for info in infos:
        try:
            total += _extract_one(zf, info, base, total, archive_bytes, limits)
        except ZipProblem as problem:
            raise _from_problem(problem) from problem
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                raise
            # The names passed the archive check; only a very long runtime root gets here.
            raise invalid(f"entry {info.filename!r} gives a path longer than this file system allows under "
                          f"{base}", info.filename) from exc
    return total


def _extract_one(zf: zipfile.ZipFile, info: zipfile.ZipInfo, base: str, total: int, archive_bytes: int,
                 limits: ZipLimits) -> int:
    """Write one entry below ``base``; returns its bytes. ``total`` is what earlier entries wrote."""
    target = os.path.join(base, *info.filename.rstrip("/").split("/"))
    kind, mode = zipsafety.entry_kind(info)
    if kind == "dir":
        os.makedirs(target, mode=0o755, exist_ok=True)
        return 0
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
                if total + written > limits.max_uncompressed_bytes:
                    raise invalid(f"extracting {info.filename!r} went over max_uncompressed_bytes "
                                  f"({limits.max_uncompressed_bytes}); the sizes in the archive headers "
                                  "are wrong or the archive is too large", info.filename,
                                  limit=limits.max_uncompressed_bytes)
                zipsafety.check_ratio(info.filename, written, info.compress_size, limits)
                zipsafety.check_total_ratio(total + written, archive_bytes, limits, info.filename)
                out.write(chunk)
    except (zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError, ValueError) as exc:
        raise invalid(f"entry {info.filename!r} is corrupt: {exc}", info.filename) from exc
    # A zlib stream can be cut short without a CRC error when the header size is also wrong.
    if written != info.file_size:
        raise invalid(f"entry {info.filename!r} holds {written} bytes but its header says "
                      f"{info.file_size}", info.filename)
    os.chmod(target, perms)
    return written
