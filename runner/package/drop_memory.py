"""The drop folder's memory of processed content (``<root>/.drop-state.json``): each zip is
processed once per content hash, across restarts, whatever name it is dropped under again."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RunnerError
from ..store.atomic import read_json, write_json_atomic
from ..store.registry import utc_now

log = logging.getLogger(__name__)

#: Entries kept; the oldest are forgotten first.
MAX_REMEMBERED = 2000


@dataclass(frozen=True)
class Remembered:
    """What happened to a content hash before."""

    zip: str
    #: "installed" or "rejected".
    outcome: str
    name: str | None
    version: str | None
    error: RunnerError | None


class DropMemory:
    """Outcomes by SHA-256 of the zip's bytes, in one JSON file written atomically."""

    def __init__(self, state_file: Path, limit: int = MAX_REMEMBERED) -> None:
        self.state_file = state_file
        self.limit = limit

    def recall(self, sha: str) -> Remembered | None:
        """The earlier outcome of this content, if any."""
        entry = self._load().get(sha)
        if not isinstance(entry, dict):
            return None
        error = None
        if entry.get("outcome") == "rejected":
            error = RunnerError(str(entry.get("code") or "2001"), str(entry.get("message") or "rejected before"),
                                **dict(entry.get("details") or {}))
        name, version = entry.get("name"), entry.get("version")
        return Remembered(str(entry.get("zip") or ""), str(entry.get("outcome") or ""),
                          str(name) if name is not None else None, str(version) if version is not None else None,
                          error)

    def remember(self, sha: str, zip_name: str, outcome: str, error: RunnerError | None = None,
                 name: str | None = None, version: str | None = None) -> None:
        """Record an outcome (the oldest entries beyond ``limit`` are dropped)."""
        state = self._load()
        entry: dict[str, Any] = {"zip": zip_name, "outcome": outcome, "at": utc_now()}
        if error is not None:
            entry.update(json.loads(json.dumps(error.to_dict(), default=str)))
        if name is not None:
            entry.update(name=name, version=version)
        state[sha] = entry
        if len(state) > self.limit:
            for old in sorted(state, key=lambda k: str(state[k].get("at", "")))[:len(state) - self.limit]:
                del state[old]
        write_json_atomic(self.state_file, state)

    def _load(self) -> dict[str, Any]:
        try:
            state = read_json(self.state_file, default={})
        except ValueError:
            log.warning("%s is not valid JSON; starting a fresh processed-zip memory", self.state_file)
            return {}
        return state if isinstance(state, dict) else {}
