"""Requests authenticated by the console's session cookie, and the cross-site checks they must pass.

Reading needs only a live session. A change (any method but GET/HEAD/OPTIONS) also needs the
session's CSRF token in ``X-CSRF-Token`` (double submit, compared in constant time) and, when the
browser says where the request comes from (``Origin``, ``Sec-Fetch-Site``), this very origin.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from runner.errors import PackageErrorCode, RunnerError

from .sessions import COOKIE_NAME, CSRF_HEADER, ConsoleSession, SessionStore

__all__ = ["SAFE_METHODS", "CookieAuth", "own_origin"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def own_origin(request: HTTPConnection) -> str:
    """``scheme://host[:port]`` as the browser addressed this daemon (from the Host header)."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}".lower()


class CookieAuth:
    """Checks the console cookie of a request against the session store."""

    def __init__(self, sessions: SessionStore) -> None:
        self.sessions = sessions

    @staticmethod
    def has_cookie(request: HTTPConnection) -> bool:
        return bool(request.cookies.get(COOKIE_NAME))

    def authenticate(self, request: HTTPConnection, method: str) -> ConsoleSession:
        """The request's session; RunnerError UNAUTHORIZED (2015) when it is unknown or expired,
        CSRF_REJECTED (2060) when a change lacks the CSRF token or comes from another site."""
        session = self.sessions.get(request.cookies.get(COOKIE_NAME))
        if session is None:
            raise RunnerError(PackageErrorCode.UNAUTHORIZED,
                              "your console session expired or was signed out: sign in again with the API token")
        if method.upper() not in SAFE_METHODS:
            check_same_origin(request)
            if not session.csrf_matches(request.headers.get(CSRF_HEADER)):
                raise RunnerError(PackageErrorCode.CSRF_REJECTED,
                                  f"a change made with the console cookie must carry the session's {CSRF_HEADER} "
                                  "header (the console page sends it; reload the page)")
        return session


def check_same_origin(request: HTTPConnection) -> None:
    """Refuse a request the browser marks as coming from another site (CSRF_REJECTED, 2060)."""
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != own_origin(request):
        raise RunnerError(PackageErrorCode.CSRF_REJECTED,
                          f"cross-origin request refused: Origin {origin!r} is not this console's origin "
                          f"{own_origin(request)!r}", origin=origin)
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise RunnerError(PackageErrorCode.CSRF_REJECTED,
                          f"cross-site request refused (Sec-Fetch-Site: {fetch_site})", sec_fetch_site=fetch_site)
