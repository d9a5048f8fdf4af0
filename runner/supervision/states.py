"""Worker and version states, their allowed transitions, and the events a transition emits.

A leaf module: it imports nothing of ours, so metrics, logs, the API and the supervisor can all
use it. Each worker owns one ``StateMachine``; every change goes through ``StateMachine.transition``,
which checks it with ``check_transition`` (an illegal move raises ``IllegalTransition``: there is no
quiet compare-and-set, callers decide under their own lock what to do) and reports each accepted
one as a ``SupervisorEvent``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class State(StrEnum):
    """Lifecycle state of a worker (and, derived, of a version)."""

    INSTALLED = "installed"  # deployed, no process started yet
    STARTING = "starting"  # spawning and handshaking a worker process
    BACKOFF = "backoff"  # no process: a restart is scheduled after the backoff delay
    RUNNING = "running"  # ready and idle
    EXECUTING = "executing"  # a call is in flight
    STOPPING = "stopping"  # draining / shutting down
    STOPPED = "stopped"  # stopped on purpose
    FAILED = "failed"  # crash loop or start failure; no restarts until an explicit start
    INVALID = "invalid"  # cannot be started at all (missing interpreter or package folder)


#: Aliases so signatures say which thing a state describes.
WorkerState = State
VersionState = State

#: States in which a worker process exists, is being brought up, or will be after a backoff.
LIVE_STATES = frozenset({State.STARTING, State.BACKOFF, State.RUNNING, State.EXECUTING})
#: States in which a worker can take calls (now or after its current one).
SERVING_STATES = frozenset({State.RUNNING, State.EXECUTING})
#: States a worker only leaves through an explicit start.
TERMINAL_STATES = frozenset({State.STOPPED, State.FAILED, State.INVALID})
#: States that mean something went wrong.
ERROR_STATES = frozenset({State.FAILED, State.INVALID})

TRANSITIONS: dict[State, frozenset[State]] = {
    State.INSTALLED: frozenset({State.STARTING, State.STOPPED, State.INVALID}),
    State.STARTING: frozenset({State.RUNNING, State.BACKOFF, State.STOPPING, State.STOPPED,
                               State.FAILED, State.INVALID}),
    # BACKOFF -> BACKOFF: the process that went down is cleaned up and its restart scheduled.
    State.BACKOFF: frozenset({State.STARTING, State.BACKOFF, State.STOPPING, State.FAILED}),
    State.RUNNING: frozenset({State.EXECUTING, State.BACKOFF, State.STOPPING, State.FAILED}),
    State.EXECUTING: frozenset({State.RUNNING, State.BACKOFF, State.STOPPING, State.FAILED}),
    State.STOPPING: frozenset({State.STOPPED, State.FAILED}),
    State.STOPPED: frozenset({State.STARTING, State.STOPPED}),
    State.FAILED: frozenset({State.STARTING, State.STOPPING, State.STOPPED}),
    State.INVALID: frozenset({State.STARTING, State.STOPPED}),
}


class IllegalTransition(AssertionError):
    """A state change that the lifecycle does not allow: a bug in the caller, never a user error."""


def is_allowed(old: State, new: State) -> bool:
    """Whether the lifecycle allows ``old -> new`` (for callers choosing between moves)."""
    return new in TRANSITIONS[old]


def check_transition(old: State, new: State, what: str = "worker", reason: str = "") -> State:
    """``new`` if the lifecycle allows ``old -> new``; raises IllegalTransition otherwise."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"{what}: {old.value} -> {new.value} is not allowed ({reason})")
    return new


@dataclass(frozen=True)
class SupervisorEvent:
    """Something that happened to a worker: a state change, a crash, a restart, a timeout.

    ``kind`` is ``"state"`` for transitions; other kinds (``"crash"``, ``"restart"``, ``"timeout"``,
    ``"heartbeat_lost"``, ``"recycle"``) carry their facts in ``details``.
    """

    kind: str
    name: str
    version: str
    worker: int
    pid: int | None = None
    old_state: State | None = None
    new_state: State | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "version": self.version, "worker": self.worker,
                "pid": self.pid, "old_state": self.old_state.value if self.old_state else None,
                "new_state": self.new_state.value if self.new_state else None, "reason": self.reason,
                "details": dict(self.details), "at": self.at}


EventSink = Callable[[SupervisorEvent], None]


class StateMachine:
    """The state of one worker. Thread-safe; the only way to change the state is ``transition``."""

    def __init__(self, name: str, version: str, worker: int, sink: EventSink | None = None,
                 initial: State = State.INSTALLED) -> None:
        self.name = name
        self.version = version
        self.worker = worker
        self._sink = sink
        self._state = initial
        self._lock = threading.Lock()
        self.changed_at = time.time()

    @property
    def state(self) -> State:
        return self._state

    def transition(self, new: State, reason: str = "", pid: int | None = None) -> None:
        """Move to ``new`` and emit an event; raises IllegalTransition if the lifecycle forbids it."""
        with self._lock:
            old = self._state
            self._state = check_transition(old, new, f"worker {self.name}/{self.version}#{self.worker}", reason)
            self.changed_at = time.time()
        self.emit(SupervisorEvent("state", self.name, self.version, self.worker, pid, old, new, reason))

    def emit(self, event: SupervisorEvent) -> None:
        """Pass an event to the sink (if any)."""
        if self._sink is not None:
            self._sink(event)


def derive_version_state(worker_states: Iterable[State], stopping: bool = False) -> State:
    """The state of a version from its workers' states.

    Serving beats everything (one healthy worker serves the version); then starting (a worker
    waiting out a restart backoff counts as starting: the version is on its way up, and its
    record keeps the states it always had); an error state only when no worker can serve.
    """
    states = list(worker_states)
    if not states:
        return State.INSTALLED
    if stopping and any(s not in TERMINAL_STATES for s in states):
        return State.STOPPING
    if State.EXECUTING in states:
        return State.EXECUTING
    if State.RUNNING in states:
        return State.RUNNING
    if State.STARTING in states or State.BACKOFF in states:
        return State.STARTING
    if State.STOPPING in states:
        return State.STOPPING
    for state in (State.INVALID, State.FAILED, State.STOPPED):
        if state in states:
            return state
    return State.INSTALLED
