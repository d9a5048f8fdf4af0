"""The record of live worker process groups (and cgroups), so a daemon killed without a chance to
stop its workers (``kill -9``, a crash) has them ended by the next start.

Each supervisor keeps one file under ``RootLayout.worker_groups`` naming its owner (pid and start
time, as runtime folders do) and every process group and cgroup it has running. At start, the files
of owners that are gone are read back: their groups get SIGKILL, their cgroups are emptied and
removed, and the files are deleted. Files of live owners (another supervisor in this process, a
second daemon refused by the lock) are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.store.atomic import read_json, write_json_atomic

from .containment.cgroup_tree import remove as remove_cgroup
from .runtime_dirs import process_start_ticks

_log = logging.getLogger(__name__)


@dataclass
class LeftoverSweep:
    """What the start-up sweep ended (for diagnostics and tests)."""

    groups: list[int] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


class ProcessGroupLedger:
    """This supervisor's file of running worker process groups. Thread-safe."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        self.path = folder / f"{pid}-{uuid.uuid4().hex[:8]}.json"
        self._owner = {"pid": pid, "started": process_start_ticks(pid) or ""}
        self._lock = threading.Lock()
        self._groups: dict[str, dict[str, Any]] = {}
        self._closed = False
        self._write()

    def add(self, key: str, pgid: int | None, cgroup: Path | None) -> None:
        """Record (or update) one process tree: its group (the leader's pid) and cgroup."""
        with self._lock:
            entry: dict[str, Any] = {"cgroup": str(cgroup) if cgroup is not None else None}
            if pgid is not None:
                entry.update(pgid=pgid, started=process_start_ticks(pgid) or "")
            self._groups[key] = entry
            self._write()

    def remove(self, key: str) -> None:
        """Forget a tree that was ended."""
        with self._lock:
            if self._groups.pop(key, None) is not None:
                self._write()

    def close(self) -> None:
        """Delete the file (after every worker stopped)."""
        with self._lock:
            self._closed = True
            self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        if self._closed:
            return
        try:
            write_json_atomic(self.path, {"owner": self._owner, "groups": list(self._groups.values())})
        except OSError as exc:
            # Losing the record only weakens clean-up after a kill -9; workers keep running.
            _log.warning("cannot record worker process groups in %s: %s", self.path, exc)


def _owner_gone(owner: Any) -> bool:
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return True
    started = process_start_ticks(int(owner["pid"]))
    return started is None or (bool(owner.get("started")) and started != owner.get("started"))


def end_leftover_groups(folder: Path) -> LeftoverSweep:
    """End the worker trees recorded by supervisors that are gone; remove their files."""
    sweep = LeftoverSweep()
    try:
        files = sorted(folder.glob("*.json"))
    except OSError:
        return sweep
    for path in files:
        try:
            body = read_json(path, default=None)
        except (OSError, ValueError):
            body = None
        if isinstance(body, dict) and not _owner_gone(body.get("owner")):
            continue
        groups = body.get("groups") if isinstance(body, dict) else None
        for entry in groups if isinstance(groups, list) else []:
            if isinstance(entry, dict):
                _end_entry(entry, sweep)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sweep.files.append(path.name)
    return sweep


#: Worker and smoke cgroups are named ``pv-<daemon pid>-...`` (see launch.py and smoke.py); the
#: probe's test folder ``procvision-probe-<pid>`` (left if its process was killed in between).
_CGROUP_NAME = re.compile(r"^(?:pv-(\d+)-|procvision-probe-(\d+)$)")


def end_orphaned_cgroups(parent: Path | None, sweep: LeftoverSweep) -> None:
    """End and remove cgroups under ``parent`` made by daemons that are gone, including those no
    record names (a smoke test's, or one made just before its record was written)."""
    if parent is None:
        return
    try:
        children = [p for p in parent.iterdir() if p.is_dir()]
    except OSError:
        return
    for child in children:
        match = _CGROUP_NAME.match(child.name)
        # A pid alive now might be reused by another process: left alone (never kill a live owner's).
        if match is None or process_start_ticks(int(match.group(1) or match.group(2))) is not None:
            continue
        if remove_cgroup(child):
            sweep.cgroups.append(str(child))


def _end_entry(entry: dict[str, Any], sweep: LeftoverSweep) -> None:
    pgid = entry.get("pgid")
    if isinstance(pgid, int) and pgid > 1:
        leader = process_start_ticks(pgid)
        # A live leader with another start time is an unrelated process that got the pid since.
        if leader is None or not entry.get("started") or leader == entry.get("started"):
            try:
                os.killpg(pgid, signal.SIGKILL)
                sweep.groups.append(pgid)
            except (ProcessLookupError, PermissionError):
                pass
    cgroup = entry.get("cgroup")
    if isinstance(cgroup, str) and cgroup and Path(cgroup).is_dir():
        if remove_cgroup(Path(cgroup)):
            sweep.cgroups.append(cgroup)
        else:
            _log.warning("cannot remove leftover worker cgroup %s", cgroup)
