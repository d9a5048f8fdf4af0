"""``operations.json``: the API's long-running operations (installs), so they outlive the daemon.

File format: ``{"format": 1, "operations": [operation, ...]}`` oldest first; an operation is the JSON
the API shows at ``GET /operations/{id}``. The file is rewritten atomically on every change of an
operation (submitted, started, next stage, finished) and holds at most ``keep`` operations: the
unfinished ones and the newest finished ones. At start the daemon marks every operation the file
still shows pending or running as failed ("interrupted by restart"), so a client polling its id
after a crash or ``kill -9`` gets an answer instead of a 404.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from .atomic import read_json, write_json_atomic

FORMAT = 1
#: Operations the journal keeps (finished ones beyond this are dropped, oldest first).
JOURNAL_KEEP = 100
UNFINISHED = frozenset({"pending", "running"})

_log = logging.getLogger("runner.journal")


class OperationsJournal:
    """The operations file of one runtime root. Thread-safe; each ``save`` replaces the whole file."""

    def __init__(self, path: Path, keep: int = JOURNAL_KEEP) -> None:
        self.path = path
        self.keep = max(1, keep)
        self._lock = threading.Lock()

    def load(self) -> list[dict[str, Any]]:
        """The stored operations, oldest first. A damaged file is set aside (``.damaged``) and read as empty."""
        try:
            data = read_json(self.path, default={"format": FORMAT, "operations": []})
        except (ValueError, OSError) as exc:
            aside = self.path.with_name(self.path.name + ".damaged")
            _log.warning("%s cannot be read (%s); moved to %s, starting with no operation history",
                         self.path, exc, aside)
            shutil.move(str(self.path), str(aside))
            return []
        entries = data.get("operations") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            return []
        return [e for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)
                and isinstance(e.get("state"), str)]

    def save(self, operations: list[dict[str, Any]]) -> None:
        """Replace the file with ``operations`` (oldest first), bounded to ``keep`` entries.

        Raises ``DiskFullError`` (2017) when the disk is full; the previous file stays as it was.
        """
        kept = bounded(operations, self.keep)
        with self._lock:
            write_json_atomic(self.path, {"format": FORMAT, "operations": kept})


def bounded(operations: list[dict[str, Any]], keep: int) -> list[dict[str, Any]]:
    """The unfinished operations and the newest finished ones, ``keep`` at most, in their order."""
    finished = [op for op in operations if op.get("state") not in UNFINISHED]
    room = max(0, keep - (len(operations) - len(finished)))
    dropped = {id(op) for op in finished[: max(0, len(finished) - room)]}
    return [op for op in operations if id(op) not in dropped]
