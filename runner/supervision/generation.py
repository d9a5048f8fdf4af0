"""One process generation of a worker slot: everything that lives and dies with one process.

A slot restarts its process many times; each start makes a new ``Generation``. Callbacks that
arrive late (an exit callback, a heartbeat, a call that failed) name the generation they belong to,
and the slot ignores them unless it is still the current one and not yet handled, so an old
process's death never ends its successor.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from .dialects import ImageHandoff
from .launcher import LaunchedProcess, ProcessClient


@dataclass(frozen=True)
class KillReason:
    """Why the runner killed a generation on purpose (a recycle)."""

    message: str
    code: str
    #: False for per-call reasons (a call's timeout, a FatalError): not counted as a crash.
    counts: bool = True


@dataclass(eq=False)
class Generation:
    """One process of a worker slot, from its start attempt to its clean-up."""

    number: int
    #: The generation's private folder (its PROC_SHM_DIR); None before it is made.
    shm_dir: Path | None = None
    launched: LaunchedProcess | None = None
    #: Set when the generation ends: stops its heartbeat, wakes a call waiting for the exit handler.
    ended: threading.Event = field(default_factory=threading.Event)
    handoff: ImageHandoff | None = None
    #: True while its handshake runs: the start thread reports a failure then (with the worker's
    #: own reason), so the exit callback of the process the handshake killed stays quiet.
    handshaking: bool = False
    #: Its end has been handled (cleaned up, restart decided): later reports of it are ignored.
    handled: bool = False
    kill_reason: KillReason | None = None
    #: When it became ready (monotonic clock), for the backoff's healthy-run reset.
    up_since: float | None = None

    @property
    def client(self) -> ProcessClient | None:
        return self.launched.client if self.launched is not None else None

    @property
    def pid(self) -> int | None:
        client = self.client
        return client.pid if client is not None else None
