"""Archive safety rules shared by the runner (which installs packages) and ``procvision-cli validate
--zip`` (which checks them on the author's machine), so both refuse the same archives.

``open_checked`` is the whole check for a package zip on disk: the end records are judged before the
central directory is read, then every entry's name, type and sizes, then the layout of the entries'
data. Problems are ``ZipProblem``; the runner turns them into error 2001 (invalid_zip).
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path
from typing import IO

from .data_ranges import check_data_ranges
from .end_records import EndRecord, check_end_record, read_end_record
from .entries import SUPPORTED_METHODS, check_entries, check_ratio, check_total_ratio
from .limits import (
    MAX_COMPONENT_BYTES,
    MAX_DEPTH,
    MAX_NAME_BYTES,
    RATIO_MIN_BYTES,
    TOTAL_RATIO_MIN_BYTES,
    ZipLimits,
    ZipProblem,
)
from .names import check_name, entry_kind

__all__ = [
    "MAX_COMPONENT_BYTES", "MAX_DEPTH", "MAX_NAME_BYTES", "RATIO_MIN_BYTES", "SUPPORTED_METHODS",
    "TOTAL_RATIO_MIN_BYTES", "CheckedZipFile", "EndRecord", "ZipLimits", "ZipProblem", "check_archive",
    "check_data_ranges", "check_end_record", "check_entries", "check_name", "check_ratio", "check_total_ratio",
    "entry_kind", "open_zip", "read_end_record",
]

_READ_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error)


class CheckedZipFile(zipfile.ZipFile):
    """A zip opened from the file object whose end records were checked (so the archive judged is the
    archive read, even if the path is replaced meanwhile); closing it closes that file."""

    def __init__(self, fp: IO[bytes]) -> None:
        self._owned = fp
        super().__init__(fp)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._owned.close()


def open_zip(path: Path, limits: ZipLimits) -> zipfile.ZipFile:
    """Open ``path`` as a zip after checking its size and end records (ZipProblem otherwise).
    The caller closes the returned zip."""
    try:
        fp = open(path, "rb")  # noqa: SIM115 - owned by the returned CheckedZipFile
    except OSError as exc:
        raise ZipProblem(f"cannot read {path.name}: {exc.strerror or exc}", path=str(path)) from exc
    try:
        size = os.fstat(fp.fileno()).st_size
        if size > limits.max_zip_bytes:
            raise ZipProblem(f"{path.name} is {size} bytes; the limit is {limits.max_zip_bytes} (max_zip_bytes)",
                             size=size, limit=limits.max_zip_bytes)
        check_end_record(read_end_record(fp), limits)
        return CheckedZipFile(fp)
    except ZipProblem:
        fp.close()
        raise
    except _READ_ERRORS as exc:
        fp.close()
        raise ZipProblem(f"{path.name} is not a readable zip archive ({exc}); rebuild it with procvision-cli "
                         "package", path=str(path)) from exc


def check_archive(zf: zipfile.ZipFile, limits: ZipLimits) -> list[zipfile.ZipInfo]:
    """Every check of an open zip: entries (central directory), then local headers and data ranges.
    Returns the entries; ZipProblem naming the first offending entry otherwise."""
    fp = zf.fp
    if fp is None:
        raise ValueError("the zip file is closed")
    archive_bytes = fp.seek(0, 2)
    try:
        infos = check_entries(zf, limits)
        check_data_ranges(fp, infos, zf.start_dir)
        # Overlaps are refused above; this bounds what many small, each unjudged, entries can add up to.
        check_total_ratio(sum(i.file_size for i in infos), archive_bytes, limits)
    except ZipProblem:
        raise
    except _READ_ERRORS as exc:
        raise ZipProblem(f"the archive is corrupt: {exc}") from exc
    return infos
