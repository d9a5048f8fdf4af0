"""Workers run with least privilege: each in its own box (see ``docs/operations.md``, "Worker sandbox").

``select_sandbox(settings)`` picks the mechanism; ``box_worker`` is the one call the spawn points
(the supervisor's launch and the install smoke test) make to wrap a worker's command line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from runner.config import Settings

from .base import BoxedCommand, BoxRequest, Probe, Protections, Sandbox
from .none import NoSandbox
from .selection import fallback_order, select_sandbox


def box_worker(settings: Settings, argv: Sequence[str], env: Mapping[str, str], *, name: str, version: str,
               package_dir: Path, python: Path, work_dir: Path) -> BoxedCommand:
    """``argv``/``env`` of a worker of ``name`` ``version`` wrapped in this daemon's sandbox.

    Raises RunnerError SANDBOX_UNAVAILABLE (``sandbox: require`` and no box works) or SANDBOX_FAILED.
    """
    request = BoxRequest(name, version, package_dir, python, work_dir, hidden=(settings.layout.root,))
    return select_sandbox(settings).wrap(argv, env, request)


def refuse_unboxed(settings: Settings, what: str) -> None:
    """Raise RunnerError SANDBOX_UNAVAILABLE if ``sandbox: require`` and no box works (before any
    worker of ``what`` is started)."""
    sandbox = select_sandbox(settings)
    if isinstance(sandbox, NoSandbox) and sandbox.required:
        raise sandbox.refusal(what)


def announce(settings: Settings, log: logging.Logger) -> Sandbox:
    """Say at daemon start which sandbox workers get; loudly when they get none."""
    sandbox = select_sandbox(settings)
    if not isinstance(sandbox, NoSandbox):
        log.info("worker sandbox: %s (setting sandbox: %s)", sandbox.name, settings.sandbox)
    elif sandbox.required:
        log.error("NO WORKER SANDBOX, and 'sandbox: require' is set: no worker will start. %s. "
                  "Install the Debian package 'bubblewrap'.", sandbox.reason)
    elif settings.sandbox == "off":
        log.warning("WORKERS RUN UNBOXED (sandbox: off): algorithm code can read the API token and "
                    "change every deployed version.")
    else:
        log.error("WORKERS RUN UNBOXED: %s. Algorithm code can read the API token and change every "
                  "deployed version. Install the Debian package 'bubblewrap' (or set 'sandbox: require' "
                  "to refuse to run workers unboxed).", sandbox.reason)
    return sandbox


def segment_dir(settings: Settings, work_dir: Path) -> Path | None:
    """Where the runner writes the image segments of the worker whose private folder is ``work_dir``."""
    return select_sandbox(settings).segment_dir(work_dir)


def protections_for(settings: Settings, name: str, version: str, package_dir: Path, python: Path
                    ) -> Protections:
    """What protects the workers of ``name`` ``version`` under this daemon's settings."""
    request = BoxRequest(name, version, package_dir, python, Path("/nonexistent"), (settings.layout.root,))
    return select_sandbox(settings).protections(request)


__all__ = ["BoxRequest", "BoxedCommand", "NoSandbox", "Probe", "Protections", "Sandbox", "announce", "box_worker",
           "fallback_order", "protections_for", "refuse_unboxed", "segment_dir", "select_sandbox"]
