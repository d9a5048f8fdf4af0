"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .layout import FILE_MODE
from .space import raise_if_disk_full


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stage_bytes(path: Path, data: bytes, mode: int = FILE_MODE) -> Path:
    """Write ``data`` durably into a temp file next to ``path``; returns it for ``commit_staged``.

    This is the step that needs disk space: when it fails, ``path`` is untouched and no temp file is
    left. Out of space raises ``DiskFullError`` (2017).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise_if_disk_full(exc, path, f"writing {path.name}")
        raise
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        raise_if_disk_full(exc, path, f"writing {path.name}")
        raise
    return Path(tmp)


def commit_staged(tmp: Path, path: Path) -> None:
    """Rename a staged temp file over ``path`` (needs no new space) and make the rename durable."""
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix."""
    commit_staged(stage_bytes(path, data, mode), path)


def json_bytes(obj: Any) -> bytes:
    """The bytes ``write_json_atomic`` writes for ``obj`` (pretty, sorted, UTF-8)."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"


def write_json_atomic(path: Path, obj: Any, mode: int = FILE_MODE) -> None:
    """Atomically write ``obj`` as pretty JSON."""
    write_bytes_atomic(path, json_bytes(obj), mode)


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON file, or ``default`` if it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default
