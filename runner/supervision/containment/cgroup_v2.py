"""cgroup v2: each worker tree in a child of the daemon's own cgroup, with ``memory.max``.

``memory.swap.max`` 0 keeps it from swapping instead, and ``memory.oom.group`` 1 makes the OOM
killer end the whole tree at once. ``memory.events`` counts the kills (``oom_kill``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from .base import CGROUP_V2, MIB
from .cgroup_tree import CgroupContainment, CgroupPlacement, read_counter, write_value


class _V2Placement(CgroupPlacement):
    mechanism = CGROUP_V2

    def oom_kills(self) -> int | None:
        events = self.path / "memory.events"
        counts = [read_counter(events, key) for key in ("oom_kill", "oom_group_kill")]
        return None if all(c is None for c in counts) else sum(c or 0 for c in counts)

    def memory_killed(self, exit_code: int | None, stderr_tail: list[str]) -> bool:
        return self.limit_mb > 0 and (self.kills() or 0) > 0


class CgroupV2Containment(CgroupContainment):
    """Child cgroups under ``parent`` (a cgroup whose subtree has the memory controller)."""

    name = CGROUP_V2

    def configure(self, path: Path, limit_mb: int) -> None:
        write_value(path / "memory.max", str(limit_mb * MIB))
        with contextlib.suppress(OSError):  # no swap controller: nothing to bound
            write_value(path / "memory.swap.max", "0")
        with contextlib.suppress(OSError):
            write_value(path / "memory.oom.group", "1")

    def placement(self, path: Path, limit_mb: int) -> CgroupPlacement:
        return _V2Placement(path, limit_mb)
