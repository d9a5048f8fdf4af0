"""Console sessions: who signed in with the API token, kept in memory, bounded, with expiry.

A session is two random values: its id travels only in an HttpOnly cookie (scripts cannot read it),
its CSRF token only in the sign-in answer and the ``X-CSRF-Token`` header the page sends back. A
cross-site page can make the browser send the cookie (not with SameSite=Strict, but defence in
depth) yet can never read the CSRF token, so it cannot forge a state-changing request.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COOKIE_NAME", "CSRF_HEADER", "ConsoleSession", "SessionStore"]

COOKIE_NAME = "procvision_console"
CSRF_HEADER = "X-CSRF-Token"
_ID_BYTES = 32


@dataclass(frozen=True)
class ConsoleSession:
    """One signed-in browser."""

    id: str
    csrf: str
    created_at: float
    expires_at: float

    def csrf_matches(self, presented: str | None) -> bool:
        """Constant-time comparison of the header's value with this session's token."""
        if not presented:
            return False
        return hmac.compare_digest(presented.encode("utf-8", "replace"), self.csrf.encode("ascii"))


class SessionStore:
    """Sessions by id; at most ``max_sessions`` (the oldest is dropped for a new one), each valid
    ``ttl_s`` seconds after sign-in. ``clock`` is injectable so tests need no waiting."""

    def __init__(self, max_sessions: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self._max = max_sessions
        self._ttl = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, ConsoleSession] = OrderedDict()

    @property
    def ttl_s(self) -> float:
        return self._ttl

    def create(self) -> ConsoleSession:
        """A new session (evicting expired ones, then the oldest while the store is full)."""
        now = self._clock()
        session = ConsoleSession(secrets.token_urlsafe(_ID_BYTES), secrets.token_urlsafe(_ID_BYTES), now,
                                 now + self._ttl)
        with self._lock:
            self._drop_expired(now)
            while len(self._sessions) >= self._max:
                self._sessions.popitem(last=False)
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> ConsoleSession | None:
        """The live session with this id, or None (unknown, signed out or expired)."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if session.expires_at <= now:
                del self._sessions[session_id]
                return None
            return session

    def delete(self, session_id: str | None) -> bool:
        """Sign out: forget the session; True if it existed."""
        if not session_id:
            return False
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def __len__(self) -> int:
        with self._lock:
            self._drop_expired(self._clock())
            return len(self._sessions)

    def _drop_expired(self, now: float) -> None:
        for sid in [sid for sid, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[sid]
