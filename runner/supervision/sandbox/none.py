"""No box: the worker runs as the daemon's user with the daemon's view (``sandbox: off``, or ``auto``
on a machine where no mechanism works). Under ``sandbox: require`` it refuses instead."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from runner.errors import PackageErrorCode, RunnerError

from .base import BoxedCommand, BoxRequest, Probe, Protections, Sandbox


class NoSandbox(Sandbox):
    """Runs workers unboxed; with ``required`` it refuses to run them at all."""

    name = "none"

    def __init__(self, reason: str, *, required: bool = False) -> None:
        self.reason = reason
        self.required = required

    def probe(self) -> Probe:
        return Probe(True, self.reason)

    def protections(self, request: BoxRequest) -> Protections:
        return Protections(mechanism=self.name, reason=self.reason)

    def refusal(self, what: str) -> RunnerError:
        """The error that stops ``what`` when a box is required but none works."""
        return RunnerError(PackageErrorCode.SANDBOX_UNAVAILABLE,
                           f"cannot start {what}: the setting 'sandbox: require' asks for a sandbox and none "
                           f"works here ({self.reason}); install the 'bubblewrap' package or set sandbox to auto",
                           reason=self.reason)

    def wrap(self, argv: Sequence[str], env: Mapping[str, str], request: BoxRequest) -> BoxedCommand:
        if self.required:
            raise self.refusal(f"{request.name} {request.version}")
        return BoxedCommand(list(argv), dict(env), None, self.protections(request))

    def segment_dir(self, work_dir: Path) -> Path | None:
        return None
