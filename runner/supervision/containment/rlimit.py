"""RLIMIT_DATA: the per-process fallback when no memory cgroup can be made.

The kernel refuses to grow a process's data segment (heap and private writable mappings) beyond the
limit, so allocations fail (Python raises MemoryError) instead of the host swapping or the OOM
killer choosing a victim. The limit is per process: children the worker starts get their own.
Nothing tells afterwards that the limit was hit, so a MemoryError in the worker's last words (or in
its error reply, see ``is_memory_error``) is what marks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import MIB, RLIMIT_DATA, Containment, Placement


def is_memory_error(details: Mapping[str, Any]) -> bool:
    """True for an error reply whose algorithm code raised MemoryError."""
    return details.get("error_class") == "MemoryError"


class _RlimitPlacement(Placement):
    mechanism = RLIMIT_DATA

    def wrap(self, argv: list[str]) -> list[str]:
        if self.limit_mb <= 0:
            return list(argv)
        # POSIX sh's ulimit -d takes KiB and sets both the soft and the hard limit.
        return ["/bin/sh", "-c", 'ulimit -d "$1" && shift && exec "$@"', "procvision-rlimit",
                str(self.limit_mb * MIB // 1024), *argv]

    def memory_error_reply(self, details: Mapping[str, Any]) -> bool:
        return self.limit_mb > 0 and is_memory_error(details)

    def memory_killed(self, exit_code: int | None, stderr_tail: list[str]) -> bool:
        if self.limit_mb <= 0 or exit_code in (None, 0):
            return False
        return any("MemoryError" in line or "Cannot allocate memory" in line for line in stderr_tail[-20:])


class RlimitContainment(Containment):
    """Each worker process gets ``RLIMIT_DATA`` = the limit."""

    name = RLIMIT_DATA

    def place(self, label: str, limit_mb: int) -> Placement:
        return _RlimitPlacement(limit_mb)
