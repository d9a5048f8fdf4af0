"""cgroup v1 memory controller: each worker tree in a child of the daemon's own memory cgroup.

``memory.limit_in_bytes`` bounds its RAM; ``memory.memsw.limit_in_bytes`` (when swap accounting is
on) and ``memory.swappiness`` 0 keep it from swapping instead. Over the limit, the kernel's OOM
killer ends a process of that cgroup only, and counts it in ``memory.oom_control`` (``oom_kill``).
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

from .base import CGROUP_V1, MIB
from .cgroup_tree import CgroupContainment, CgroupPlacement, read_counter, read_int, write_value


class _V1Placement(CgroupPlacement):
    mechanism = CGROUP_V1

    def __init__(self, path: Path, limit_mb: int) -> None:
        super().__init__(path, limit_mb)
        # Kernels before 4.13 have no oom_kill counter; they count limit hits (failcnt) instead.
        self._counts_kills = read_counter(path / "memory.oom_control", "oom_kill") is not None

    def oom_kills(self) -> int | None:
        if self._counts_kills:
            return read_counter(self.path / "memory.oom_control", "oom_kill")
        return read_int(self.path / "memory.failcnt")

    def memory_killed(self, exit_code: int | None, stderr_tail: list[str]) -> bool:
        if self.limit_mb <= 0 or (self.kills() or 0) == 0:
            return False
        # The cgroup holds this one worker tree, so an OOM kill in it is why the worker ended, whatever
        # status the sandbox in front of it reported (as in v2). A limit hit (old kernels) can also
        # end in reclaim: there the worker must have died of a SIGKILL too (-9 bare, 128 + 9 boxed).
        return self._counts_kills or exit_code in (None, -signal.SIGKILL, 128 + signal.SIGKILL)


class CgroupV1Containment(CgroupContainment):
    """Child memory cgroups under ``parent`` (the daemon's own memory cgroup folder)."""

    name = CGROUP_V1

    def configure(self, path: Path, limit_mb: int) -> None:
        limit = str(limit_mb * MIB)
        write_value(path / "memory.limit_in_bytes", limit)
        # Without swap accounting the file is missing; with it, RAM+swap gets the same bound.
        with contextlib.suppress(OSError):
            write_value(path / "memory.memsw.limit_in_bytes", limit)
        with contextlib.suppress(OSError):
            write_value(path / "memory.swappiness", "0")

    def placement(self, path: Path, limit_mb: int) -> CgroupPlacement:
        return _V1Placement(path, limit_mb)
