"""What every CLI command gets: parsed settings, the API client, output streams, ``--json``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # loaded when a command needs them: --version and --help need none
    from runner.config import Settings  # serve, execute

    from .client import RunnerClient
    from .endpoint import Endpoint

#: Default of ``--timeout`` (seconds to wait for each API answer).
DEFAULT_TIMEOUT_S = 30.0


def add_common(parser: argparse.ArgumentParser, *, top_level: bool = False) -> None:
    """Options accepted before the command (``top_level``) and after it (every subcommand).

    A subcommand's copies default to "not given" (SUPPRESS) so a value given before the command is
    not reset by the subcommand's parser.
    """

    def default(value: Any) -> Any:
        return value if top_level else argparse.SUPPRESS

    parser.add_argument("--root", type=Path, default=default(None),
                        help="runtime root (default ./algorithms; for the token file)")
    parser.add_argument("--config", type=Path, default=default(None), help="runner_config.json to read settings from")
    parser.add_argument("--url", default=default(None), help="daemon URL (default http://<host>:<port> from "
                                                             "settings, i.e. http://127.0.0.1:8765)")
    parser.add_argument("--token", default=default(None),
                        help="API token (default: PROCVISION_RUNNER_TOKEN, then <root>/.token)")
    parser.add_argument("--json", action="store_true", default=default(False), help="print JSON instead of tables")
    parser.add_argument("--timeout", type=float, default=default(DEFAULT_TIMEOUT_S),
                        help=f"seconds to wait for each API answer (default {DEFAULT_TIMEOUT_S:.0f})")


class SettingsProblem(Exception):
    """The settings (flags, env, config file) are invalid; the message says which."""


@dataclass
class CliContext:
    """Per-invocation state of the CLI."""

    args: argparse.Namespace
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    _settings: Settings | None = None
    #: Where the CLI's token came from (or where it looked), added to a 401's message.
    token_hint: str | None = None
    #: The process environment (``main`` passes ``os.environ``): read for the endpoint only.
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def settings(self, **overrides: Any) -> Settings:
        """Settings from --config/--root (plus ``overrides``), env and defaults."""
        from runner.config import Settings

        if self._settings is None or overrides:
            values = {"root": getattr(self.args, "root", None), **overrides}
            try:
                built = Settings.load(getattr(self.args, "config", None), **values)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError too
                raise SettingsProblem(str(exc)) from exc
            if overrides:
                return built
            self._settings = built
        return self._settings

    @property
    def timeout_s(self) -> float:
        return float(getattr(self.args, "timeout", DEFAULT_TIMEOUT_S))

    def endpoint(self) -> Endpoint:
        """The daemon's URL and token from the flags, the environment and the config file."""
        from .endpoint import EndpointProblem, resolve_endpoint

        try:
            return resolve_endpoint(self.environ, root=getattr(self.args, "root", None),
                                    config=getattr(self.args, "config", None), url=getattr(self.args, "url", None),
                                    token=getattr(self.args, "token", None))
        except EndpointProblem as exc:
            raise SettingsProblem(str(exc)) from exc

    def client(self) -> RunnerClient:
        from .client import RunnerClient

        endpoint = self.endpoint()
        if endpoint.token is None:
            self.token_hint = (f"the CLI found no token: not in --token, PROCVISION_RUNNER_TOKEN or the "
                               f"config, and no token file at {endpoint.token_file}; pass --root of "
                               "the daemon's root or --token")
        else:
            self.token_hint = (f"the CLI sent the token from {endpoint.token_origin}; the daemon reads its own "
                               f"from its settings or its root's .token file: pass --root of the daemon's root, "
                               "or --token")
        return RunnerClient(endpoint.url, endpoint.token, timeout_s=self.timeout_s)
