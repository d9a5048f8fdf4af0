"""The seam between a worker slot and the processes it runs.

A ``Worker`` never spawns anything itself: it asks its ``WorkerLauncher`` for one
``LaunchedProcess`` per generation and for the handshake that proves the algorithm loaded. The real
launcher (``launch.Launcher``) spawns a contained, sandboxed adapter process; a test passes a fake
one, so the slot's state machine (start, crash, backoff, crash loop, stop) runs without processes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from procvision_algorithm_sdk.client import WorkerFailure

from .dialects import Dialect
from .spec import WorkerSpec


class ProcessClient(Protocol):
    """What a worker slot uses of one worker process (the SDK's ``AdapterClient`` is one)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def alive(self) -> bool: ...

    @property
    def stderr_tail(self) -> list[str]: ...

    @property
    def failure(self) -> WorkerFailure | None: ...

    def call(self, data: dict[str, Any], timeout: float, request_id: str | None = None,
             encoded: bytes | None = None) -> dict[str, Any]: ...

    def ping(self, timeout: float) -> dict[str, Any]: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float) -> int | None: ...

    def shutdown(self, timeout: float = 5.0, term_timeout: float = 3.0) -> int | None: ...


#: Called once when a process ends: (its client, exit code or None, a message saying how it ended).
ExitCallback = Callable[[ProcessClient, int | None, str], None]


@dataclass(frozen=True)
class Handshake:
    """A process that proved its algorithm loaded: its hello, dialect and (if it sent it) get_info."""

    hello: dict[str, Any]
    dialect: Dialect
    info: dict[str, Any] | None


class LaunchedProcess(ABC):
    """One worker process (spawned by the handshake) and everything around it (group, cgroup)."""

    client: ProcessClient

    @abstractmethod
    def memory_cause(self, exit_code: int | None, stderr_tail: list[str]) -> str | None:
        """Why the process ended, if its memory limit ended it; None otherwise."""

    @abstractmethod
    def memory_error_reply(self, details: dict[str, Any]) -> str | None:
        """The over-the-limit message if a call's error reply means an allocation hit the limit."""

    @abstractmethod
    def end(self) -> None:
        """Kill the process and everything it started; forget it. Idempotent."""


class WorkerLauncher(ABC):
    """Makes the processes of worker slots."""

    @abstractmethod
    def launch(self, spec: WorkerSpec, index: int, shm_dir: Path, on_stderr_line: Callable[[str], None],
               on_exit: ExitCallback) -> LaunchedProcess:
        """A process of ``spec`` for slot ``index``, not yet spawned. Raises OSError if its
        containment cannot be set up (it must never run unlimited)."""

    @abstractmethod
    def status(self, limit_mb: int) -> dict[str, Any]:
        """The containment in force for workers with ``limit_mb`` (what ``status`` shows)."""

    @abstractmethod
    def handshake(self, launched: LaunchedProcess) -> Handshake:
        """Spawn the process and confirm the algorithm loaded. Raises HandshakeFailed (the process
        is killed) or OSError (it could not be executed)."""
