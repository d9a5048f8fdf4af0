"""Check a zip's central directory: names, types, flags, duplicates and declared sizes."""

from __future__ import annotations

import zipfile

from .limits import RATIO_MIN_BYTES, TOTAL_RATIO_MIN_BYTES, ZipLimits, ZipProblem
from .names import check_name, entry_kind

SUPPORTED_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})


def check_ratio(name: str, produced: int, compressed: int, limits: ZipLimits) -> None:
    """ZipProblem if one entry expands more than ``max_ratio`` (entries up to 1 MiB are not judged)."""
    if produced <= RATIO_MIN_BYTES:
        return
    ratio = produced / max(compressed, 1)
    if ratio > limits.max_ratio:
        raise ZipProblem(f"entry {name!r} expands {ratio:.0f}x (over max_compression_ratio "
                         f"{limits.max_ratio:g}); this looks like a zip bomb", name, ratio=round(ratio, 1),
                         limit=limits.max_ratio)


def check_total_ratio(produced: int, archive_bytes: int, limits: ZipLimits, name: str | None = None) -> None:
    """ZipProblem if the whole archive expands more than ``max_total_ratio`` (judged above 16 MiB)."""
    if produced <= TOTAL_RATIO_MIN_BYTES:
        return
    ratio = produced / max(archive_bytes, 1)
    if ratio > limits.max_total_ratio:
        where = f" (reached at entry {name!r})" if name else ""
        raise ZipProblem(f"the archive expands {ratio:.0f}x in total{where}, over max_total_compression_ratio "
                         f"{limits.max_total_ratio:g}; this looks like a zip bomb", name, ratio=round(ratio, 1),
                         limit=limits.max_total_ratio)


def check_entries(zf: zipfile.ZipFile, limits: ZipLimits) -> list[zipfile.ZipInfo]:
    """Check every entry's name, type, flags and declared sizes; returns the entries.

    Raises ZipProblem naming the first offending entry. Reads only the central directory.
    """
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise ZipProblem(f"the archive has {len(infos)} entries; the limit is {limits.max_entries} "
                         "(max_zip_entries)", count=len(infos), limit=limits.max_entries)
    if not infos:
        raise ZipProblem("the archive is empty")
    seen: dict[str, str] = {}
    files: set[str] = set()
    declared = 0
    for info in infos:
        check_name(info)
        name = info.filename
        kind, _mode = entry_kind(info)
        if kind not in ("file", "dir"):
            raise ZipProblem(f"entry {name!r} is {kind}; only regular files and folders are allowed", name,
                             kind=kind)
        if info.flag_bits & 0x1:
            raise ZipProblem(f"entry {name!r} is encrypted; packages must not be password-protected", name)
        if info.compress_type not in SUPPORTED_METHODS:
            raise ZipProblem(f"entry {name!r} uses unsupported compression method {info.compress_type}", name,
                             method=info.compress_type)
        key = name.rstrip("/")
        folded = key.casefold()
        if folded in seen:
            other = seen[folded]
            what = "appears twice" if other.rstrip("/") == key else f"differs only in letter case from {other!r}"
            raise ZipProblem(f"entry {name!r} {what}", name, other=other)
        seen[folded] = name
        if kind == "file":
            files.add(folded)
        declared += info.file_size
        if declared > limits.max_uncompressed_bytes:
            raise ZipProblem(f"the archive declares more than {limits.max_uncompressed_bytes} uncompressed "
                             f"bytes (reached at entry {name!r}; max_uncompressed_bytes)", name,
                             limit=limits.max_uncompressed_bytes)
        check_ratio(name, info.file_size, info.compress_size, limits)
    _check_folders(infos, files, seen)
    return infos


def _check_folders(infos: list[zipfile.ZipInfo], files: set[str], seen: dict[str, str]) -> None:
    # Folders spelled in two letter cases ("algo/x" and "ALGO/y") merge on case-insensitive disks.
    spellings: dict[str, str] = {}
    for info in infos:
        parts = info.filename.rstrip("/").split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            other = spellings.setdefault(prefix.casefold(), prefix)
            if other != prefix:
                raise ZipProblem(f"entry {info.filename!r} spells {prefix!r} differently from {other!r} "
                                 "(names must not differ only in letter case)", info.filename, other=other)
    # A file whose path is also a folder prefix of another entry ("a" and "a/b") cannot be extracted.
    for folded_name in files:
        parts = folded_name.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in files:
                raise ZipProblem(f"entry {seen[prefix]!r} is a file but {seen[folded_name]!r} uses it as a folder",
                                 seen[prefix])
