"""No memory limit: the setting is 0, or the machine offers no mechanism the daemon may use."""

from __future__ import annotations

from .base import NONE, Containment, Placement


class _Unbounded(Placement):
    mechanism = NONE

    def memory_killed(self, exit_code: int | None, stderr_tail: list[str]) -> bool:
        return False

    def describe(self) -> str:
        return "no memory limit"


class NoContainment(Containment):
    """Workers run without a memory limit; process groups still end their trees."""

    name = NONE

    def place(self, label: str, limit_mb: int) -> Placement:
        return _Unbounded(0)
