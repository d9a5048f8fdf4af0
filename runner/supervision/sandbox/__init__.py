"""Workers run with least privilege: each in its own box (see ``docs/operations.md``, "Worker sandbox").

``select_sandbox(settings)`` picks the mechanism; ``box_worker`` is the one call the spawn points
(the supervisor's launch and the install smoke test) make to wrap a worker's command line.
"""

from __future__ import annotations

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


def segment_dir(settings: Settings, work_dir: Path) -> Path | None:
    """Where the runner writes the image segments of the worker whose private folder is ``work_dir``."""
    return select_sandbox(settings).segment_dir(work_dir)


def protections_for(settings: Settings, name: str, version: str, package_dir: Path, python: Path
                    ) -> Protections:
    """What protects the workers of ``name`` ``version`` under this daemon's settings."""
    request = BoxRequest(name, version, package_dir, python, Path("/nonexistent"), (settings.layout.root,))
    return select_sandbox(settings).protections(request)


__all__ = ["BoxRequest", "BoxedCommand", "NoSandbox", "Probe", "Protections", "Sandbox", "box_worker",
           "fallback_order", "protections_for", "segment_dir", "select_sandbox"]
