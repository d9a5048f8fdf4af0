"""cgroup v2: each worker tree in a child of the daemon's own cgroup, with ``memory.max``.

``memory.swap.max`` 0 keeps it from swapping instead, and ``memory.oom.group`` 1 makes the OOM
killer end the whole tree at once. ``memory.events`` counts the kills (``oom_kill``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from .base import CGROUP_V2, MIB, Containment, Placement
from .cgroup_tree import CgroupPlacement, read_counter, remove, write_value


class _V2Placement(CgroupPlacement):
    mechanism = CGROUP_V2

    def oom_kills(self) -> int | None:
        events = self.path / "memory.events"
        counts = [read_counter(events, key) for key in ("oom_kill", "oom_group_kill")]
        return None if all(c is None for c in counts) else sum(c or 0 for c in counts)

    def memory_killed(self, exit_code: int | None, stderr_tail: list[str]) -> bool:
        return self.limit_mb > 0 and (self.kills() or 0) > 0


class CgroupV2Containment(Containment):
    """Child cgroups under ``parent`` (a cgroup whose subtree has the memory controller)."""

    name = CGROUP_V2

    def __init__(self, parent: Path, reason: str) -> None:
        super().__init__(reason)
        self.parent = parent

    @property
    def cgroup_parent(self) -> Path | None:
        return self.parent

    def place(self, label: str, limit_mb: int) -> Placement:
        path = self.parent / label
        if path.exists():
            remove(path)
        path.mkdir()
        try:
            if limit_mb > 0:
                write_value(path / "memory.max", str(limit_mb * MIB))
                with contextlib.suppress(OSError):  # no swap controller: nothing to bound
                    write_value(path / "memory.swap.max", "0")
                with contextlib.suppress(OSError):
                    write_value(path / "memory.oom.group", "1")
        except OSError:
            remove(path)
            raise
        return _V2Placement(path, limit_mb)
