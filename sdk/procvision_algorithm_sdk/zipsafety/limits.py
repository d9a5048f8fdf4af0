"""The limits a package zip must respect, and the problem raised when it does not.

The defaults equal the runner's default settings, so ``procvision-cli validate --zip`` judges an
archive as a station with default settings would. The fixed limits on entry names follow Linux
(``NAME_MAX``) and are not settings: a name the station's file system cannot hold is never valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Longest path component, in UTF-8 bytes (``NAME_MAX`` of ext4, XFS, Btrfs).
MAX_COMPONENT_BYTES = 255
#: Longest entry name, in UTF-8 bytes; well under ``PATH_MAX`` (4096) so the name still fits after
#: the runtime root and ``deployed/<name>/<version>/`` are put in front of it.
MAX_NAME_BYTES = 1024
#: Deepest folder nesting of an entry (path components).
MAX_DEPTH = 48
#: Below this many uncompressed bytes an entry's compression ratio is not judged: small runs of
#: zeros (blank assets, empty tables) compress extremely well and are harmless.
RATIO_MIN_BYTES = 1024 * 1024
#: Below this many uncompressed bytes in total the whole archive's ratio is not judged.
TOTAL_RATIO_MIN_BYTES = 16 * 1024 * 1024
#: Central-directory bytes allowed per claimed entry: the 46-byte record, a name of at most
#: MAX_NAME_BYTES and room for extra fields and a comment. The directory is read into memory before
#: any entry is parsed, so its size is bounded by the claimed entry count.
DIRECTORY_BYTES_PER_ENTRY = 46 + MAX_NAME_BYTES + 1024


class ZipProblem(Exception):
    """An archive the runner refuses. ``entry`` names the offending member (None for the whole
    archive); ``details`` are extra facts for reports (limit, sizes, ...)."""

    def __init__(self, message: str, entry: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.entry = entry
        self.details = details


@dataclass(frozen=True)
class ZipLimits:
    """Archive limits (the runner fills them from its settings of the same names)."""

    max_zip_bytes: int = 2 * 1024**3
    max_entries: int = 20000
    max_uncompressed_bytes: int = 4 * 1024**3
    max_ratio: float = 200.0
    max_total_ratio: float = 100.0

    def max_directory_bytes(self, entries: int) -> int:
        """Largest central directory accepted for ``entries`` claimed entries."""
        return 64 * 1024 + max(entries, 0) * DIRECTORY_BYTES_PER_ENTRY
