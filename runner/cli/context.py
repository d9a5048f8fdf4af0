"""What every CLI command gets: parsed settings, the API client, output streams, ``--json``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from runner.config import Settings

from .client import RunnerClient, default_url, token_for


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every subcommand accepts (so they can follow the command name)."""
    parser.add_argument("--root", type=Path, help="runtime root (default ./algorithms; for the token file)")
    parser.add_argument("--config", type=Path, help="runner_config.json to read settings from")
    parser.add_argument("--url", help="daemon URL (default http://<host>:<port> from settings, "
                                      "i.e. http://127.0.0.1:8765)")
    parser.add_argument("--token", help="API token (default: PROCVISION_RUNNER_TOKEN, then <root>/.token)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each API answer")


class SettingsProblem(Exception):
    """The settings (flags, env, config file) are invalid; the message says which."""


@dataclass
class CliContext:
    """Per-invocation state of the CLI."""

    args: argparse.Namespace
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    _settings: Settings | None = None

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def settings(self, **overrides: Any) -> Settings:
        """Settings from --config/--root (plus ``overrides``), env and defaults."""
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

    def client(self) -> RunnerClient:
        settings = self.settings()
        url = getattr(self.args, "url", None) or default_url(settings)
        return RunnerClient(url, token_for(settings, getattr(self.args, "token", None)),
                            timeout_s=float(getattr(self.args, "timeout", 30.0)))
