"""Bearer-token authentication: where the token comes from and how requests are checked."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from runner.config import Settings
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

    With ``token=None`` (auth disabled) every request passes. Comparison is constant-time.
    """

    def __init__(self, token: str | None) -> None:
        self._token = token

    @property
    def enabled(self) -> bool:
        return self._token is not None

    async def __call__(self, credentials: HTTPAuthorizationCredentials | None = Security(BEARER)) -> None:
        if self._token is None:
            return
        if credentials is None:
            raise RunnerError(PackageErrorCode.UNAUTHORIZED,
                              "missing bearer token: send 'Authorization: Bearer <token>' "
                              "(the token is in <root>/.token)")
        if not hmac.compare_digest(credentials.credentials.encode("utf-8"), self._token.encode("utf-8")):
            raise RunnerError(PackageErrorCode.UNAUTHORIZED,
                              "wrong bearer token: use the token in <root>/.token or the configured one")
