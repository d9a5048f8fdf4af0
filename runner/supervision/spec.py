"""Value types of the supervision API: what to run (WorkerSpec) and what a call gave (CallOutcome)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dialects import Dialect


@dataclass(frozen=True)
class WorkerSpec:
    """How to start the workers of one deployed version.

    ``package_dir`` is the folder holding manifest.json (the worker's cwd); ``python`` the venv's
    interpreter; ``entry_point`` overrides the manifest's (``module:Class``) when given;
    ``memory_limit_mb`` the version's own memory limit from its activation (None: the setting).
    """

    name: str
    version: str
    version_dir: Path
    package_dir: Path
    python: Path
    entry_point: str | None = None
    memory_limit_mb: int | None = None


@dataclass
class CallOutcome:
    """The result of one call as the worker (or the runner, for timeouts/crashes) reported it.

    ``data`` is the frame's data as is (the routing layer normalises it); ``details`` is what the
    answer reports beyond that (frame extras such as error_class, exit_code, stderr_tail). The flags
    are what the runner acts on, typed so no code reads control decisions out of ``details``:
    ``timed_out`` (no reply within the deadline, the worker was recycled), ``not_sent`` (the call
    never reached a worker, so it may wait for another), ``retryable`` (the algorithm asked for a
    retry) and ``fatal`` (the algorithm said its worker cannot go on).
    """

    status: str  # "OK" | "ERROR"
    message: str
    data: dict[str, Any]
    error_code: str | None
    error_name: str | None
    worker_pid: int | None
    latency_ms: float
    retries: int
    dialect: Dialect
    details: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False
    not_sent: bool = False
    retryable: bool = False
    fatal: bool = False
    #: Where ``latency_ms`` went (set by the pool): waiting for a free worker, and the worker round
    #: trips (image handoff, frames, the algorithm), summed over retries. Feeds Server-Timing.
    queue_ms: float = 0.0
    worker_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "data": self.data, "error_code": self.error_code,
                "error_name": self.error_name, "worker_pid": self.worker_pid, "latency_ms": self.latency_ms,
                "retries": self.retries, "dialect": self.dialect.value, "details": self.details}
