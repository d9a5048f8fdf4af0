"""Bearer-token authentication: where the token comes from and how requests are checked."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from runner.config import Settings
from runner.console.cookie_auth import CookieAuth
from runner.errors import PackageErrorCode, RunnerError
from runner.store.atomic import write_bytes_atomic
from runner.tokens import read_token_file

__all__ = ["BEARER", "BearerAuth", "read_token_file", "resolve_token"]

TOKEN_BYTES = 32
#: The bearer scheme as the OpenAPI spec declares it. Every route that depends on BearerAuth lists
#: it under ``security`` (FastAPI collects it from the dependency), so a new router included with the
#: auth dependency is documented as protected without naming it anywhere.
BEARER = HTTPBearer(scheme_name="bearerAuth", auto_error=False,
                    description="The token in <root>/.token (or the configured one): "
                                "Authorization: Bearer <token>")


def is_loopback_host(host: str) -> bool:
    """True if every address ``host`` stands for is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    addresses = {str(info[4][0]).split("%", 1)[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def check_exposure(settings: Settings) -> None:
    """Refuse to serve without the token anywhere but on loopback (RunnerError INSECURE_SETUP, 2018)."""
    if not settings.auth_enabled and not is_loopback_host(settings.host):
        raise RunnerError(PackageErrorCode.INSECURE_SETUP,
                          f"--no-auth (auth_enabled=false) is only allowed on a loopback host, not {settings.host!r}: "
                          "anyone on the network could install and run code; bind to 127.0.0.1 or keep the token",
                          host=settings.host)


def resolve_token(settings: Settings) -> str | None:
    """The token the API expects, or None when auth is disabled.

    ``settings.token`` wins; otherwise the token in ``<root>/.token``, generated (mode 0600, written
    atomically) on first start so the CLI on the same machine can read it.
    """
    if not settings.auth_enabled:
        return None
    if settings.token:
        return settings.token
    path = settings.layout.token_file
    existing = read_token_file(path)
    if existing:
        return existing
    token = secrets.token_urlsafe(TOKEN_BYTES)
    write_bytes_atomic(path, (token + "\n").encode("ascii"), mode=0o600)
    return token


class BearerAuth:
    """FastAPI dependency that rejects requests without the right ``Authorization: Bearer`` token.

    With ``token=None`` (auth disabled) every request passes. Comparison is constant-time. With
    ``cookies``, a request without a bearer token may instead carry a console session cookie
    (runner/console): changes made that way must also carry the session's CSRF token.
    """

    def __init__(self, token: str | None, cookies: CookieAuth | None = None) -> None:
        self._token = token
        self.cookies = cookies

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def accepts(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value passes (what ``__call__`` checks, for code that
        answers without FastAPI's dependencies; a refusal, or a console cookie, is then handled by
        the normal route)."""
        if self._token is None:
            return True
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not credentials:
            return False
        return self.token_matches(credentials.strip())

    def token_matches(self, presented: str) -> bool:
        """True when ``presented`` is the API token (constant-time); always with auth disabled."""
        if self._token is None:
            return True
        return hmac.compare_digest(presented.encode("utf-8"), self._token.encode("utf-8"))

    async def __call__(self, request: Request,
                       credentials: HTTPAuthorizationCredentials | None = Security(BEARER)) -> None:
        if self._token is None:
            return
        if credentials is None and self.cookies is not None and self.cookies.has_cookie(request):
            self.cookies.authenticate(request, request.method)
            return
        if credentials is None:
            raise RunnerError(PackageErrorCode.UNAUTHORIZED,
                              "missing bearer token: send 'Authorization: Bearer <token>' "
                              "(the token is in <root>/.token)")
        if not self.token_matches(credentials.credentials):
            raise RunnerError(PackageErrorCode.UNAUTHORIZED,
                              "wrong bearer token: use the token in <root>/.token or the configured one")
