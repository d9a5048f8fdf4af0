"""Bytecode for uv-built venvs, without slowing the install down.

uv installs no ``.pyc`` files (compiling numpy takes seconds), and workers run with their venv
read-only, so without them every worker start compiles each module it imports, again: ~0.3 s of CPU
for ``import numpy`` (~0.9 s on a loaded 2-core station), in the install's smoke test and in every
served worker start. Two measures:

* after a version is published, ``BytecodeCompiler`` compiles its ``site-packages`` in the background
  (the runner's job, never a worker's: the base interpreter with ``-I -S``, so no ``.pth`` file of the
  package runs; one core; a deadline), so its workers start from bytecode. The test suites packages
  ship (``tests``/``test`` folders) are left out: no worker imports them, and they are most of the
  work (numpy 2.4: 250 of 554 files, 1.7 s of CPU with them vs 0.6 s without);
* a new install links (``link_bytecode``) the ``.pyc`` files of every module whose source is the very
  file (same inode: both linked from the uv cache) of an already deployed version, before its smoke
  test. Timestamp ``.pyc`` files name the source's mtime and size, which a shared inode shares, and
  Python still checks them at import.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from ..config import Settings
from ..errors import RunnerError
from .venv import PendingStep

log = logging.getLogger(__name__)


def site_packages(venv_dir: Path) -> Path | None:
    """The venv's ``lib/pythonX.Y/site-packages`` (None if there is none)."""
    found = sorted(venv_dir.glob("lib/python*/site-packages"))
    return found[0] if found else None


def excluded_folders_pattern(site: Path) -> str:
    """The ``compileall -x`` pattern of the test folders under ``site``. compileall searches the whole
    path, so the pattern is anchored at ``site``: a root that itself lies under a ``tests`` folder must
    not exclude everything."""
    return re.escape(str(site)) + r"[/\\](?:.*[/\\])?tests?[/\\]"


def link_bytecode(site: Path, deployed_sites: Iterable[Path]) -> int:
    """Hard-link into ``site`` the ``.pyc`` files of ``deployed_sites`` whose source is the same file
    (inode) in ``site``; returns how many were linked. The sites are tried in order until one shares
    files (walking each costs ~0.1 s); anything unexpected skips that file (Python then compiles it)."""
    linked = 0
    for other in deployed_sites:
        try:
            for cache_dir in other.rglob("__pycache__"):
                rel_dir = cache_dir.parent.relative_to(other)
                linked += _link_folder(cache_dir, other / rel_dir, site / rel_dir)
        except OSError as exc:
            log.debug("no bytecode from %s: %s", other, exc)  # removed meanwhile: the others still count
        if linked:
            break
    return linked


def _link_folder(their_cache: Path, their_dir: Path, our_dir: Path) -> int:
    our_cache = our_dir / "__pycache__"
    if our_cache.exists() or not our_dir.is_dir():
        return 0
    linked = 0
    for pyc in their_cache.glob("*.pyc"):
        source_name = pyc.name.split(".", 1)[0] + ".py"
        try:
            if os.stat(their_dir / source_name).st_ino != os.stat(our_dir / source_name).st_ino:
                continue
            if not linked:
                our_cache.mkdir()
            os.link(pyc, our_cache / pyc.name)
        except OSError:
            continue  # source not shared, gone meanwhile, or another filesystem
        linked += 1
    return linked


def remove_bytecode(site: Path) -> int:
    """Remove every ``.pyc`` under ``site``; returns how many. A compile that failed may have left a
    truncated one: on a full disk the write of a ``.pyc`` can stop short without an error, and
    Python then fails the import ("marshal data too short") instead of compiling the source."""
    removed = 0
    for cache_dir in list(site.rglob("__pycache__")):
        for pyc in cache_dir.glob("*.pyc"):
            try:
                pyc.unlink()
                removed += 1
            except OSError as exc:
                log.warning("could not remove %s after a failed bytecode compile: %s", pyc, exc)
    return removed


class BytecodeCompiler:
    """Compiles published venvs' ``site-packages`` in the background; ``stop`` ends the compiles of a
    version before its folder is removed (a running compile would recreate ``__pycache__`` folders)."""

    def __init__(self, settings: Settings, env: dict[str, str]) -> None:
        self.settings = settings
        self.env = env
        self._running: dict[Path, tuple[PendingStep, threading.Thread]] = {}
        self._stopped: set[Path] = set()
        self._lock = threading.Lock()

    def start(self, interpreter: str, site: Path) -> None:
        """Compile ``site`` with ``interpreter`` (the venv's base Python: same bytecode version)."""
        argv = [interpreter, "-I", "-S", "-m", "compileall", "-q", "-j", "1", "-x", excluded_folders_pattern(site),
                str(site)]
        try:
            step = PendingStep(argv, self.settings.bytecode_timeout_s, f"compiling {site}", self.env, cwd=site)
        except RunnerError as exc:
            log.warning("bytecode for %s: %s", site, exc.message)  # the version is installed all the same
            return
        thread = threading.Thread(target=self._finish, args=(site, step), name="bytecode", daemon=True)
        with self._lock:
            self._running[site] = (step, thread)
        thread.start()

    def _finish(self, site: Path, step: PendingStep) -> None:
        try:
            step.finish()
        except RunnerError as exc:
            with self._lock:
                stopped = site in self._stopped
            # Nothing breaks without bytecode: workers compile in memory as before.
            if not stopped:
                removed = remove_bytecode(site)
                log.warning("bytecode for %s: %s; its %d .pyc files were removed (workers compile in memory)",
                            site, exc.message, removed)
        finally:
            with self._lock:
                self._running.pop(site, None)
                self._stopped.discard(site)

    def stop(self, folder: Path, timeout_s: float = 30.0) -> None:
        """End the compiles of venvs under ``folder`` and wait for them (before ``folder`` is removed)."""
        with self._lock:
            ending = [(site, step, thread) for site, (step, thread) in self._running.items()
                      if site.is_relative_to(folder)]
            self._stopped.update(site for site, _, _ in ending)
        for _, step, _ in ending:
            step.kill()
        for site, _, thread in ending:
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("the bytecode compile of %s did not end within %gs", site, timeout_s)

    def wait(self, timeout_s: float) -> bool:
        """Wait for the compiles started so far; True if they all ended within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads = [thread for _, thread in self._running.values()]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)
