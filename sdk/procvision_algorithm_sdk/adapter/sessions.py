"""Sessions kept across calls, so state set in ``pre_execute`` is there in ``execute``."""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable

from ..session import Session

DEFAULT_CAPACITY = 256


class SessionStore:
    """Sessions by id, least recently used evicted beyond ``capacity``.

    ``on_end(session)`` runs (outside the lock) for every session that ends, whether explicitly,
    by eviction or by ``clear()``; the adapter calls the algorithm's ``reset`` there.
    """

    def __init__(self, on_end: Callable[[Session], None], capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._on_end = on_end
        self._lock = threading.Lock()
        self._sessions: collections.OrderedDict[str, Session] = collections.OrderedDict()

    def get(self, session_id: str, context: dict[str, Any] | None = None) -> Session:
        """The session for ``session_id`` (created if new), marked most recently used.

        A non-empty ``context`` replaces the stored one: the runner sends the current context with
        every call.
        """
        evicted = []
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                session = Session(session_id, context)
                self._sessions[session_id] = session
                while len(self._sessions) > self.capacity:
                    evicted.append(self._sessions.popitem(last=False)[1])
            else:
                self._sessions.move_to_end(session_id)
                if context:
                    session._update_context(context)
        for old in evicted:
            self._on_end(old)
        return session

    def end(self, session_id: str) -> bool:
        """End a session (calls ``on_end``); False if it was not known."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        self._on_end(session)
        return True

    def clear(self) -> None:
        """End every session."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            self._on_end(session)

    def __contains__(self, session_id: object) -> bool:
        with self._lock:
            return session_id in self._sessions

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
