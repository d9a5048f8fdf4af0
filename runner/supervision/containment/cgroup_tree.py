"""What both cgroup versions share: file operations on one cgroup folder (join it, read its
counters, kill everything in it, remove it) and the containment that makes one folder per worker
tree under a parent; each version says only which control files bound the memory."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from abc import abstractmethod
from pathlib import Path

from .base import Containment, Placement


def write_value(path: Path, value: str) -> None:
    """Write one control file (raises OSError as the kernel refuses)."""
    with open(path, "w", encoding="ascii") as fh:
        fh.write(value)


def read_counter(path: Path, key: str) -> int | None:
    """The ``key N`` counter of a flat-keyed control file (memory.events, memory.oom_control)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return None


def read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def pids_in(cgroup: Path) -> list[int]:
    """The processes in ``cgroup`` (not its children), or [] if it is gone."""
    try:
        text = (cgroup / "cgroup.procs").read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    return [int(p) for p in text.split() if p.isdigit()]


def kill_all(cgroup: Path, timeout_s: float = 5.0) -> bool:
    """SIGKILL every process in ``cgroup`` until none is left (a process may fork while it is being
    killed, so this repeats). True once it is empty, False if ``timeout_s`` passed first."""
    kill_file = cgroup / "cgroup.kill"  # cgroup v2 on Linux 5.14+: one atomic write
    deadline = time.monotonic() + timeout_s
    while True:
        pids = pids_in(cgroup)
        if not pids:
            return True
        if kill_file.exists():
            with contextlib.suppress(OSError):
                write_value(kill_file, "1")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)  # killed processes leave the cgroup once the kernel has torn them down


def remove(cgroup: Path, timeout_s: float = 5.0) -> bool:
    """Kill what is left in ``cgroup`` and remove the folder. True if it is gone."""
    if not cgroup.is_dir():
        return True
    kill_all(cgroup, timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            cgroup.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            # EBUSY until the last killed process has really left.
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)


#: ``sh -c`` script: write the shell's pid (the worker's, after exec) into $1, then become "$@".
_ENTER = 'echo $$ > "$1" && shift && exec "$@"'


class CgroupPlacement(Placement):
    """A process tree in a cgroup of its own: joined before exec (``wrap``), emptied and removed by
    ``terminate``. Subclasses say how the kernel reports a memory kill (``oom_kills``).

    The kill counter is read once more just before the folder is removed, so threads that look
    after the removal (the caller of a call, while the exit handler cleaned up) get the same answer.
    A lock makes "read the live counter" and "read it last, then remove the folder" exclusive: a
    caller that found the counter not yet taken could otherwise read a folder removed meanwhile and
    see no kill at all (a memory kill reported as a plain crash, about one run in ten here).
    """

    def __init__(self, path: Path, limit_mb: int) -> None:
        super().__init__(limit_mb)
        self.path = path
        self._procs_file = str(path / "cgroup.procs")
        self._terminated = False
        self._kills_at_end: int | None = None
        self._counted = False  # _kills_at_end holds the last reading; the folder may be gone
        self._counter_lock = threading.Lock()

    def oom_kills(self) -> int | None:
        """How many processes the kernel killed for the limit (None: it cannot tell)."""
        return None

    def kills(self) -> int | None:
        with self._counter_lock:
            return self._kills_at_end if self._counted else self.oom_kills()

    @property
    def cgroup(self) -> Path | None:
        return self.path

    def wrap(self, argv: list[str]) -> list[str]:
        # If the cgroup cannot be joined, sh says why on stderr and exits: the start fails with it.
        return ["/bin/sh", "-c", _ENTER, "procvision-cgroup", self._procs_file, *argv]

    def terminate(self) -> None:
        if self._terminated:
            return
        kill_all(self.path)
        with self._counter_lock:
            if not self._counted:
                self._kills_at_end = self.oom_kills()
                self._counted = True
            self._terminated = remove(self.path)

    def describe(self) -> str:
        return f"{self.limit_mb} MB ({self.mechanism}, {self.path})" if self.limit_mb > 0 \
            else f"no memory limit ({self.mechanism})"


class CgroupContainment(Containment):
    """Child cgroups under ``parent``: one folder per worker tree, removed with it. Subclasses write
    the limit (``configure``) and make the placement that reads their kill counter (``placement``)."""

    def __init__(self, parent: Path, reason: str) -> None:
        super().__init__(reason)
        self.parent = parent

    @property
    def cgroup_parent(self) -> Path | None:
        return self.parent

    def place(self, label: str, limit_mb: int) -> Placement:
        path = self.parent / label
        if path.exists():
            remove(path)  # a leftover of a process with the same label: end it first
        path.mkdir()
        try:
            if limit_mb > 0:
                self.configure(path, limit_mb)
        except OSError:
            remove(path)
            raise
        return self.placement(path, limit_mb)

    @abstractmethod
    def configure(self, path: Path, limit_mb: int) -> None:
        """Write the memory limit of the new cgroup ``path`` (OSError if it cannot be set)."""

    @abstractmethod
    def placement(self, path: Path, limit_mb: int) -> CgroupPlacement:
        """The placement of one worker tree in ``path``."""
