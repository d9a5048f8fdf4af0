"""Where a processed drop-folder file goes, and the log line that says so.

Installed zips (and zips whose content was already installed) move to ``zips/processed/``; files
that were refused (not a zip, not a regular file, or the install failed) move to ``zips/rejected/``
with ``<file>.error.json`` beside them. Either way ``zips/`` holds only what has not been looked at
yet, and every outcome is one log line that names the file and where it went.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from ..errors import RunnerError
from ..jsonable import jsonable
from ..store.atomic import write_json_atomic
from ..store.layout import RootLayout
from ..store.registry import utc_now

log = logging.getLogger(__name__)


def _free_target(folder: Path, name: str) -> Path:
    """``folder/name``, or a timestamped name beside it when that is taken (nothing is overwritten)."""
    target = folder / name
    if os.path.lexists(target):
        stem, dot, suffix = name.rpartition(".")
        stamp = int(time.time() * 1000)
        target = folder / (f"{stem}-{stamp}.{suffix}" if dot and stem else f"{name}-{stamp}")
    return target


class DropOutcomes:
    """Moves drop-folder files to ``processed/`` or ``rejected/`` and logs what happened."""

    def __init__(self, layout: RootLayout) -> None:
        self.layout = layout

    def _shown(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.layout.root))
        except ValueError:
            return str(path)

    def reject(self, path: Path, error: RunnerError, rename_only: bool = False) -> Path | None:
        """Move ``path`` to ``rejected/`` with its ``.error.json``; None (logged) if it cannot be moved.
        ``rename_only``: a special file is renamed, never copied (copying would open it)."""
        target = _free_target(self.layout.rejected, path.name)
        body = jsonable({**error.to_dict(), "zip": path.name, "rejected_at": utc_now()})
        error_file = target.with_name(target.name + ".error.json")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(error_file, body)
        except OSError as exc:
            log.error("drop folder: cannot write %s: %s; %s is skipped until it changes", error_file, exc, path.name)
            return None
        if not self._move(path, target, rename_only):
            error_file.unlink(missing_ok=True)  # no report without the file it describes
            return None
        log.warning("drop folder: rejected %s [%s %s] %s; moved to %s (reason in %s)", path.name, error.code,
                    error.name, error.message, self._shown(target), error_file.name)
        return target

    def archive(self, path: Path, what: str) -> Path | None:
        """Move an installed (or already installed) zip to ``processed/``; ``what`` says which, for
        the log. None (logged) if it cannot be moved."""
        target = _free_target(self.layout.processed, path.name)
        if not self._move(path, target, rename_only=False):
            log.info("drop folder: %s: %s", path.name, what)
            return None
        log.info("drop folder: %s: %s; moved to %s", path.name, what, self._shown(target))
        return target

    def _move(self, path: Path, target: Path, rename_only: bool) -> bool:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if rename_only:
                os.rename(path, target)
            else:
                shutil.move(str(path), str(target))
        except OSError as exc:
            log.error("drop folder: cannot move %s to %s: %s; it is skipped until it changes", path, target, exc)
            return False
        return True
