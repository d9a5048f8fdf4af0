"""What ``RunnerService``'s management operations answer, typed. ``jsonable`` turns each into the JSON
body the API sends (bindings through ``Binding.to_dict``); the API's response models are made from
these classes (api/responses.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.routing.activation import Binding


@dataclass(frozen=True)
class BindingsChange:
    """What an activate, switch or rollback bound (``result``), and every binding after it, by pid."""

    result: list[Binding]
    active: dict[str, Binding]


@dataclass(frozen=True)
class Deactivated:
    """The pids unbound, and every binding left, by pid."""

    deactivated: list[str]
    active: dict[str, Binding]


@dataclass(frozen=True)
class Uninstalled:
    """A version removed (``force``: it was stopped or unbound first if it had to be)."""

    name: str
    version: str
    removed: bool
    force: bool


@dataclass(frozen=True)
class VersionStatus:
    """A version's state and its workers' status (None while it has no pool), after start/stop/restart."""

    name: str
    version: str
    state: str | None
    workers: dict[str, Any] | None
