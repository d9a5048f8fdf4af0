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

    def oom_kills(self) -> int | None:
        kills = read_counter(self.path / "memory.oom_control", "oom_kill")
        if kills is None:
            # Kernels before 4.13 have no oom_kill counter: hitting the limit (and a SIGKILL, see
            # memory_killed) is the sign.
            return read_int(self.path / "memory.failcnt")
        return kills

    def memory_killed(self, exit_code: int | None, stderr_tail: list[str]) -> bool:
        if self.limit_mb <= 0:
            return False
        # A SIGKILL shows as -9 on a bare worker and as 128 + 9 through the sandbox (bwrap and the
        # monitor in front of it report a signalled child the way a shell does).
        return (self.kills() or 0) > 0 and exit_code in (None, -signal.SIGKILL, 128 + signal.SIGKILL)


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
