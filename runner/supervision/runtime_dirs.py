"""The supervisor's runtime folder (workers' private image folders live in it), and the removal of
folders that daemons killed without a chance to clean up (``kill -9``, power loss) left behind.

Each folder records its owner in ``owner.pid``: the daemon's pid and the start time of that process
(from ``/proc``), so a pid the kernel gave to an unrelated process later is not mistaken for the
owner. A folder is removed only when its recorded owner is gone; a folder without ``owner.pid``
(one being created this instant, or made by an older runner) is left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from runner.store.atomic import write_bytes_atomic

#: Name prefix of runtime folders.
RUNTIME_PREFIX = "procvision-runner-"
#: The file naming a runtime folder's owner.
OWNER_FILE = "owner.pid"

_log = logging.getLogger(__name__)


def process_start_ticks(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, from /proc), or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    except OSError:
        return None
    # After the command name: state is field 3, starttime field 22 (1-based) of the whole line.
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def create_runtime_dir(parent: Path | None) -> Path:
    """A new private runtime folder under ``parent`` (the system temp folder if None), owned by us."""
    path = Path(tempfile.mkdtemp(prefix=RUNTIME_PREFIX, dir=parent))
    pid = os.getpid()
    write_bytes_atomic(path / OWNER_FILE, f"{pid} {process_start_ticks(pid) or ''}\n".encode("ascii"))
    return path


def owner_alive(path: Path) -> bool | None:
    """True if the daemon that made runtime folder ``path`` still runs, False if it is gone, None if
    the folder names no owner (so nobody can tell)."""
    try:
        text = (path / OWNER_FILE).read_text(encoding="ascii", errors="replace").split()
    except FileNotFoundError:
        return None
    except OSError:
        return None
    if not text or not text[0].isdigit():
        return None
    started = process_start_ticks(int(text[0]))
    if started is None:
        return False
    # Without a recorded start time (no /proc when it was written) a live pid counts as the owner.
    return len(text) < 2 or text[1] == started


def remove_orphaned_runtime_dirs(parent: Path | None, keep: Path | None = None) -> list[Path]:
    """Remove runtime folders under ``parent`` whose owning daemon is gone; returns those removed."""
    folder = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(RUNTIME_PREFIX) and p != keep]
    except OSError as exc:
        _log.warning("cannot list %s for leftover runtime folders: %s", folder, exc)
        return removed
    for path in candidates:
        if path.is_symlink() or not path.is_dir() or owner_alive(path) is not False:
            continue
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            continue  # another supervisor removed it first
        except OSError as exc:
            _log.warning("cannot remove leftover runtime folder %s: %s", path, exc)
            continue
        removed.append(path)
    return removed
