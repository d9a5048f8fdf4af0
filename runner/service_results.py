"""What ``RunnerService``'s management operations answer, typed. ``jsonable`` turns each into the JSON
body the API sends (bindings through ``Binding.to_dict``); the API's response models are made from
these classes (api/responses.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.routing.activation import Binding


@dataclass(frozen=True)
class VersionRef:
    """A version by name and number (one side of a pid's move)."""

    name: str
    version: str


@dataclass(frozen=True)
class PidChange:
    """What one pid served before an operation and after it (None: unbound). JSON keys ``from``/``to``."""

    pid: str
    before: VersionRef | None
    after: VersionRef | None

    def to_dict(self) -> dict[str, Any]:
        def ref(value: VersionRef | None) -> dict[str, str] | None:
            return None if value is None else {"name": value.name, "version": value.version}
        return {"pid": self.pid, "from": ref(self.before), "to": ref(self.after)}


def moves(before: Mapping[str, Binding], after: Sequence[Binding]) -> list[PidChange]:
    """The change of each pid an activation bound, from the bindings before it."""
    changes: list[PidChange] = []
    for binding in after:
        old = before.get(binding.pid)
        changes.append(PidChange(binding.pid, None if old is None else VersionRef(old.name, old.version),
                                 VersionRef(binding.name, binding.version)))
    return changes


@dataclass(frozen=True)
class BindingsChange:
    """What an activate, switch or rollback bound (``result``), each pid's move (``changes``), and every
    binding after it, by pid. A switch also lists the old versions it removed (``pruned``) because only
    ``retain_versions`` once-active versions of a package are kept."""

    result: list[Binding]
    changes: list[PidChange]
    active: dict[str, Binding]
    pruned: list[VersionRef] | None = None
    retain_versions: int | None = None


@dataclass(frozen=True)
class Deactivated:
    """The pids unbound, the version each one left (``changes``), and every binding left, by pid."""

    deactivated: list[str]
    changes: list[PidChange]
    active: dict[str, Binding]


@dataclass(frozen=True)
class Uninstalled:
    """A version removed (``force``: it was stopped or unbound first if it had to be)."""

    name: str
    version: str
    removed: bool
    force: bool
    unbound_pids: list[str] = field(default_factory=list)  # pids left without an active version (force)


@dataclass(frozen=True)
class VersionStatus:
    """A version's state and its workers' status (None while it has no pool), after start/stop/restart."""

    name: str
    version: str
    state: str | None
    workers: dict[str, Any] | None
