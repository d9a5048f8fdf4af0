"""uv: ``uv venv`` (no pip, no setuptools seeded) and ``uv pip install --offline --no-index`` with the
runner's own cache (``settings.uv_cache``, under the root), so versions sharing wheels link them from the
cache instead of unpacking them again.

The uv binary is run directly (not ``python -m uv``: one interpreter start less per step). A cache entry
that cannot be read (a folder removed, a pointer file damaged) fails uv's install; those entries are then
cleaned with ``uv cache clean <names>`` (uv's own locking) and the install runs once more, so a damaged
cache costs one unpack, never an install.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.utils import parse_wheel_filename

from ...config import Settings
from ...errors import RunnerError
from ..venv import run_step, venv_python
from .base import VenvTool
from .scripts import relocate_scripts

log = logging.getLogger(__name__)

_CLEAN_TIMEOUT_S = 60.0
#: What uv says when an entry of its cache cannot be used (besides naming the cache folder).
_CACHE_SIGNS = ("cache entry", "archive-v")


class UvTool(VenvTool):
    """uv, offline, with the runner's cache and content-addressed wheel links (see ``wheelhouse_links``)."""

    name = "uv"
    compiles_bytecode = False

    def __init__(self, settings: Settings, env: Mapping[str, str], uv_bin: Path) -> None:
        super().__init__(settings, env)
        self.uv_bin = uv_bin

    def create_argv(self, interpreter: str, venv_dir: Path) -> list[str]:
        return [str(self.uv_bin), "venv", "--quiet", "--python", interpreter, "--no-project", str(venv_dir)]

    def install(self, venv_dir: Path, wheels: Sequence[Path], wheels_dir: Path, requirements_file: Path) -> None:
        find_links = wheelhouse_links(self.settings.layout.wheelhouse, wheels)
        links = [arg for folder in find_links for arg in ("--find-links", str(folder))]
        # The venv's base interpreter and --prefix, not --python <venv>/bin/python: uv asks an
        # interpreter about itself once per path it has not seen (its cache knows the base one, see
        # warm_up.py), and every new venv is a new path (~50 ms per install). The scripts then name
        # the base interpreter; relocate_scripts points them at the venv's python.
        interpreter = os.path.realpath(venv_python(venv_dir))
        argv = [str(self.uv_bin), "pip", "install", "--quiet", "--python", interpreter, "--prefix", str(venv_dir),
                "--offline", "--no-index", *links, "-r", str(requirements_file)]
        what = "installing the wheels with uv"
        try:
            run_step(argv, self.settings.pip_timeout_s, what, self.env)
        except RunnerError as exc:
            if not self._cache_trouble(exc):
                raise
            names = sorted({str(parse_wheel_filename(w.name)[0]) for w in wheels})
            log.warning("uv could not use its cache (%s); cleaning the entries of %s and installing again",
                        exc.message, ", ".join(names))
            run_step([str(self.uv_bin), "cache", "clean", *names], _CLEAN_TIMEOUT_S, "cleaning the uv cache",
                     self.env)
            run_step(argv, self.settings.pip_timeout_s, what, self.env)
        relocate_scripts(venv_dir, interpreter)

    def _cache_trouble(self, exc: RunnerError) -> bool:
        tail = str(exc.details.get("stderr_tail") or "")
        return str(self.settings.uv_cache) in tail or any(sign in tail for sign in _CACHE_SIGNS)


def wheelhouse_links(wheelhouse: Path, wheels: Sequence[Path]) -> list[Path]:
    """Hard-link each wheel into ``wheelhouse/<sha256>/<file name>`` (content-addressed, created once)
    and return those folders, to be used as find-links.

    uv keys its cache of local wheels by their path and mtime: a wheel found at the same stable path as
    in an earlier install is linked from the cache instead of being unpacked again (numpy: ~0.7 s).
    """
    folders = []
    for wheel in wheels:
        digest = hashlib.sha256()
        with open(wheel, "rb") as handle:
            for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(chunk)
        folder = wheelhouse / digest.hexdigest()[:40]
        target = folder / wheel.name
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{wheel.name}.{os.getpid()}.tmp"
            tmp.unlink(missing_ok=True)
            try:
                os.link(wheel, tmp)
            except OSError:
                shutil.copyfile(wheel, tmp)  # another filesystem: a copy is as good
            os.replace(tmp, target)
        elif not os.path.samefile(target, wheel):
            # Same content already linked by another version: share its inode (one copy on disk, and the
            # link count tells recover() when no version uses it any more).
            tmp = wheel.with_name(f".{wheel.name}.{os.getpid()}.tmp")
            try:
                os.link(target, tmp)
                os.replace(tmp, wheel)
            except OSError:
                tmp.unlink(missing_ok=True)  # another filesystem: keep the package's own copy
        folders.append(folder)
    return folders
