"""The folders a venv's interpreter needs to run: the venv, the Python installation it was made from,
and folders its ``.pth`` files add to ``sys.path`` (editable installs)."""

from __future__ import annotations

import functools
import os
from pathlib import Path


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _prefix_of_bin(bin_dir: Path) -> Path:
    # An installation keeps bin/ and lib/ side by side; a bare interpreter folder is its own prefix.
    return bin_dir.parent if bin_dir.name == "bin" else bin_dir


def venv_home(venv_dir: Path) -> Path | None:
    """The ``home`` (base interpreter's folder) recorded in ``pyvenv.cfg``, or None."""
    try:
        text = (venv_dir / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "home" and value.strip():
            return Path(value.strip())
    return None


def _pth_folders(venv_dir: Path) -> list[Path]:
    found: list[Path] = []
    for site in sorted(venv_dir.glob("lib/python*/site-packages")):
        for pth in sorted(site.glob("*.pth")):
            try:
                lines = pth.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                entry = line.strip()
                # "import ..." lines run code; only plain absolute folders are paths to show.
                if entry.startswith("/") and Path(entry).is_dir():
                    found.append(_real(Path(entry)))
    return found


@functools.lru_cache(maxsize=64)
def interpreter_folders(python: Path) -> tuple[Path, ...]:
    """Real folders a worker started as ``python`` (a venv's ``bin/python``) must be able to read.

    Cached per interpreter path: a deployed venv does not change (a reinstall is a new version)."""
    venv_dir = python.parent.parent
    folders = [_real(venv_dir), _prefix_of_bin(_real(python).parent)]
    home = venv_home(venv_dir)
    if home is not None:
        folders.append(_prefix_of_bin(_real(home)))
    folders.extend(_pth_folders(venv_dir))
    unique: list[Path] = []
    for folder in folders:
        if folder != Path("/") and folder.is_dir() and folder not in unique:
            unique.append(folder)
    return tuple(unique)
