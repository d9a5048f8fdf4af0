"""Per-detection session state shared by the phases of one detection (pre_execute, execute)."""

from __future__ import annotations

import copy
import json
from typing import Any


class Session:
    """State keyed by name for one session id.

    Values must be JSON-serialisable (``TypeError`` otherwise) so that state stays plain data.
    ``context`` is what the runner sent with the call; it is returned as a copy, so changing it
    has no effect.
    """

    def __init__(self, id: str, context: dict[str, Any] | None = None) -> None:  # noqa: A002
        self._id = str(id)
        self._state: dict[str, Any] = {}
        self._context: dict[str, Any] = copy.deepcopy(dict(context)) if context else {}

    @property
    def id(self) -> str:
        return self._id

    @property
    def context(self) -> dict[str, Any]:
        return copy.deepcopy(self._context)

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        return self._state.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``. Raises TypeError if the value is not JSON-serialisable."""
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"session value for {key!r} must be JSON-serialisable "
                            f"(got {type(value).__name__}): {exc}") from None
        self._state[key] = value

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        return self._state.pop(key, _MISSING) is not _MISSING

    def exists(self, key: str) -> bool:
        """True if a value is stored under ``key``."""
        return key in self._state

    def keys(self) -> list[str]:
        """The stored keys."""
        return list(self._state)

    def _update_context(self, context: dict[str, Any]) -> None:
        """Replace the context (the adapter does this when a later call brings a new one)."""
        self._context = copy.deepcopy(dict(context))

    def __repr__(self) -> str:
        return f"Session(id={self._id!r}, keys={sorted(self._state)!r})"


_MISSING = object()
