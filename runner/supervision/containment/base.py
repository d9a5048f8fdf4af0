"""What every way of bounding a worker's memory offers: one abstract mechanism and the placement
of one worker process tree under it.

A ``Containment`` is chosen once per supervisor (``probe.choose_containment``). For every process
it starts, the launcher asks it for a ``Placement``: the placement's ``wrap`` puts a tiny ``/bin/sh``
step in front of the command that enters the cgroup (or sets the rlimit) and then ``exec``s it, so
the limit holds before any algorithm code runs and covers everything the process becomes or starts,
a sandbox wrapper included (no Python runs between fork and exec in the threaded daemon).
``memory_killed`` tells after an exit whether the limit ended the process, and ``terminate`` ends
whatever is left of the tree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Mechanism names, in the order the probe tries them.
CGROUP_V2 = "cgroup-v2"
CGROUP_V1 = "cgroup-v1"
RLIMIT_DATA = "rlimit-data"
NONE = "none"
MECHANISMS = (CGROUP_V2, CGROUP_V1, RLIMIT_DATA, NONE)

MIB = 1024 * 1024


@dataclass(frozen=True)
class ContainmentReport:
    """Which mechanism is in force and why (what ``status``/``show`` report).

    ``rejected`` names each mechanism tried before it and why it was not usable here.
    """

    mechanism: str
    reason: str
    limit_mb: int
    rejected: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def enforced(self) -> bool:
        return self.mechanism != NONE and self.limit_mb > 0

    def to_dict(self) -> dict[str, Any]:
        return {"mechanism": self.mechanism, "limit_mb": self.limit_mb, "enforced": self.enforced,
                "reason": self.reason, "rejected": [{"mechanism": m, "why": w} for m, w in self.rejected]}


class Placement(ABC):
    """One worker process tree under a mechanism (and its limit, ``limit_mb``; 0 = none)."""

    mechanism: str = NONE

    def __init__(self, limit_mb: int) -> None:
        self.limit_mb = limit_mb

    @property
    def cgroup(self) -> Path | None:
        """The process tree's own cgroup, if the mechanism made one."""
        return None

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` preceded by what applies the limit to the process before it runs (same pid:
        the wrapper ``exec``s the command)."""
        return list(argv)

    @abstractmethod
    def memory_killed(self, exit_code: int | None, stderr_tail: list[str]) -> bool:
        """True if the process ended because it went over the limit."""

    def memory_error_reply(self, details: Mapping[str, Any]) -> bool:
        """True if an error reply (its frame extras) means the process hit the limit."""
        return False

    def terminate(self) -> None:
        """Kill whatever of the tree is left and release what the placement holds. Idempotent."""
        return None

    def describe(self) -> str:
        """How the limit is enforced, for messages."""
        return f"{self.limit_mb} MB ({self.mechanism})"


class Containment(ABC):
    """One mechanism that bounds worker memory, ready to use on this machine."""

    name: str = NONE

    def __init__(self, reason: str) -> None:
        #: Why this mechanism is the one in force (for ``status``).
        self.reason = reason

    @property
    def cgroup_parent(self) -> Path | None:
        """The folder worker cgroups are made in, if this mechanism makes any."""
        return None

    @abstractmethod
    def place(self, label: str, limit_mb: int) -> Placement:
        """A placement for one new process tree named ``label`` (unique per process)."""
