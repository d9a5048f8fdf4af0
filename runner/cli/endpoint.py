"""Which daemon the client commands talk to, and with which token, resolved without pydantic.

Client commands (``list``, ``status``, ``activate``, ...) need four settings: root (for the token
file), host, port and token. Loading ``runner.config.Settings`` for them would cost more than the
whole command (pydantic-settings takes ~0.5 s to import), so this module resolves those four with
the same sources and precedence as ``Settings.load``: flags > ``PROCVISION_RUNNER_*`` environment
(names case-insensitive, as pydantic-settings reads them) > the JSON config file (``--config``, else
``<root>/runner_config.json``) > defaults. tests/runner/test_cli_endpoint.py holds the two to the
same answers. ``serve`` and ``execute`` still load the full Settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.store.layout import RootLayout
from runner.tokens import read_token_file

ENV_PREFIX = "PROCVISION_RUNNER_"
DEFAULT_ROOT = Path("algorithms")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class EndpointProblem(ValueError):
    """A value the client needs is unusable; the message names it and where it came from."""


@dataclass(frozen=True)
class Endpoint:
    """The daemon's URL, the token to send (None: none found) and where the token was looked for."""

    url: str
    token: str | None
    token_file: Path
    #: "flag", "setting" (environment or config) or "file"; None when no token was found.
    token_source: str | None
    #: Where exactly the token came from, for people: "--token", "PROCVISION_RUNNER_TOKEN",
    #: "config file PATH" or "token file PATH" (None when no token was found).
    token_origin: str | None = None


def url_for(host: str, port: int) -> str:
    """The URL of a daemon bound to ``host``:``port`` (a wildcard bind is reached on loopback)."""
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _env(environ: Mapping[str, str], name: str) -> str | None:
    wanted = (ENV_PREFIX + name).lower()
    for key, value in environ.items():
        if key.lower() == wanted:
            return value
    return None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EndpointProblem(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise EndpointProblem(f"config file {path} must hold a JSON object")
    return data


def _port(value: Any, source: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise EndpointProblem(f"port from {source} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not 0 <= port <= 65535:
        raise EndpointProblem(f"port from {source} must be 0-65535, got {value!r}")
    return port


def resolve_endpoint(environ: Mapping[str, str], *, root: Path | None = None, config: Path | None = None,
                     url: str | None = None, token: str | None = None) -> Endpoint:
    """The endpoint for the flags given (``None``: not given), the environment and the config file."""
    env_root = _env(environ, "ROOT")
    probe_root = root if root is not None else Path(env_root) if env_root else DEFAULT_ROOT
    if config is None:
        candidate = RootLayout(probe_root).config_file
        config = candidate if candidate.is_file() else None
    file_values = _read_config(config) if config is not None else {}
    source = f"config file {config}"

    def pick(name: str, default: Any) -> tuple[Any, str]:
        from_env = _env(environ, name.upper())
        if from_env is not None:
            return from_env, f"{ENV_PREFIX}{name.upper()}"
        if name in file_values and file_values[name] is not None:
            return file_values[name], source
        return default, "the default"

    if root is None:
        picked_root, _ = pick("root", DEFAULT_ROOT)
        root = Path(picked_root)
    host, _ = pick("host", DEFAULT_HOST)
    port_value, port_source = pick("port", DEFAULT_PORT)
    token_file = RootLayout(root.resolve()).token_file
    if url is None:
        url = url_for(str(host), _port(port_value, port_source))
    if token:
        return Endpoint(url, token, token_file, "flag", "--token")
    configured, origin = pick("token", None)
    if configured:
        return Endpoint(url, str(configured), token_file, "setting", origin)
    from_file = read_token_file(token_file)
    if from_file:
        return Endpoint(url, from_file, token_file, "file", f"token file {token_file}")
    return Endpoint(url, None, token_file, None)
