"""Disk use of installed versions (package + venv), measured once per install: a version's files do
not change after it is published, so the walk is cached by name, version and zip digest."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from runner.store.layout import RootLayout

__all__ = ["VersionSizes", "tree_size"]


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (symlinks not followed; 0 if it is gone)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            total += info.st_size
    return total


class VersionSizes:
    """Sizes of version folders, cached per (name, version, zip_sha256)."""

    def __init__(self, layout: RootLayout) -> None:
        self._layout = layout
        self._cache: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    def size_of(self, name: str, version: str, digest: str) -> int:
        key = (name, version, digest)
        with self._lock:
            known = self._cache.get(key)
        if known is not None:
            return known
        size = tree_size(self._layout.version_dir(name, version))
        with self._lock:
            self._cache[key] = size
        return size
