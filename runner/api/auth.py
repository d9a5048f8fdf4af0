"""Bearer-token authentication: where the token comes from and how requests are checked."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from runner.config import Settings
from runner.errors import PackageErrorCode, RunnerError
from runner.store.atomic import write_bytes_atomic

TOKEN_BYTES = 32


def read_token_file(path: Path) -> str | None:
    """The token stored in ``path``, or None if the file does not exist or is empty."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


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
        self._scheme = HTTPBearer(auto_error=False, description="Token from <root>/.token")

    @property
    def enabled(self) -> bool:
        return self._token is not None

    async def __call__(self, request: Request) -> None:
        if self._token is None:
            return
        credentials: HTTPAuthorizationCredentials | None = await self._scheme(request)
        if credentials is None:
            raise RunnerError(PackageErrorCode.UNAUTHORIZED,
                              "missing bearer token: send 'Authorization: Bearer <token>' "
                              "(the token is in <root>/.token)")
        if not hmac.compare_digest(credentials.credentials.encode("utf-8"), self._token.encode("utf-8")):
            raise RunnerError(PackageErrorCode.UNAUTHORIZED,
                              "wrong bearer token: use the token in <root>/.token or the configured one")
