"""Diagnostics: named values an algorithm publishes about itself (model version, timings, ...)."""

from __future__ import annotations

import threading
from typing import Any


class Diagnostics:
    """A small thread-safe key/value board. ``get()`` returns a snapshot copy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: dict[str, Any] = {}

    def publish(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` (replacing any earlier value)."""
        with self._lock:
            self.items[key] = value

    def get(self) -> dict[str, Any]:
        """A copy of everything published so far."""
        with self._lock:
            return dict(self.items)

    def clear(self) -> None:
        """Forget every published value."""
        with self._lock:
            self.items.clear()
