"""Which versions a pid rolls back to and which versions of a package are pruned: pure decisions
over the activation history and the registry records, carried out by ``Router``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from runner.errors import PackageErrorCode, RunnerError

from .activation import Binding

VersionKey = tuple[str, str]


def rollback_target(pid: str, current: Binding, history: Sequence[Binding],
                    usable: Callable[[VersionKey], bool]) -> tuple[VersionKey, int]:
    """The latest entry of ``pid``'s ``history`` on another version than ``current`` that is still
    ``usable`` (installed and not invalid), and its index in the history.

    RunnerError 2009 when there is none.
    """
    for index in range(len(history) - 1, -1, -1):
        entry = history[index]
        if entry.key == current.key:
            continue
        if usable(entry.key):
            return entry.key, index
    raise RunnerError(PackageErrorCode.NOT_FOUND,
                      f"pid {pid!r} has no earlier version that is still installed to roll back to "
                      f"(it is on {current.name} {current.version})", pid=pid)


def prune_candidates(records: Iterable[Mapping[str, Any]], ever_bound: set[VersionKey], keep: int,
                     last_used: Callable[[str, str], Any]) -> list[VersionKey]:
    """Versions beyond the ``keep`` most recently used among those ever bound to a pid.

    Versions never activated are left alone (someone installed them for a reason). The caller still
    skips versions bound now or with calls in flight.
    """
    used = [r for r in records if (r["name"], r["version"]) in ever_bound]
    used.sort(key=lambda r: (last_used(r["name"], r["version"]), str(r.get("created_at") or "")), reverse=True)
    return [(str(r["name"]), str(r["version"])) for r in used[keep:]]
