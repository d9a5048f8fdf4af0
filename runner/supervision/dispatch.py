"""Which call runs on which worker: a FIFO of waiting calls, busy workers, session affinity.

Not thread-safe by itself: every method must be called with the owning pool's condition held
(``cond``), which it also uses to wake waiters.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .states import ERROR_STATES, SERVING_STATES, State
from .worker import Worker

#: Session ids remembered for affinity; the oldest is forgotten beyond this (sessions never ended).
MAX_SESSIONS = 10000


@dataclass
class _Waiter:
    session_id: str | None
    worker: Worker | None = None
    prefer: int | None = None  # the worker whose segment already holds the call's image


class Dispatcher:
    """Hands free workers to waiting calls, oldest first; a call with a session id waits for the
    worker that served that session (its state lives in that process)."""

    def __init__(self, cond: threading.Condition, workers: Sequence[Worker]) -> None:
        self._cond = cond
        self._workers = list(workers)
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._busy: set[int] = set()
        self._sessions: collections.OrderedDict[str, int] = collections.OrderedDict()

    def depth(self) -> int:
        """Calls waiting for a worker."""
        return len(self._waiters)

    def busy(self) -> int:
        return len(self._busy)

    def acquire(self, session_id: str | None, budget_s: float, front: bool,
                check: Callable[[], None], prefer: int | None = None) -> Worker | None:
        """Wait up to ``budget_s`` for a worker; None when the budget ran out.

        ``front`` puts the call at the head of the queue (a retry keeps its place). ``check`` runs
        while waiting and may raise to abandon the wait (for example when the pool stopped).
        ``prefer``: the worker to take if it is free when the call's turn comes (any free one else).
        """
        waiter = _Waiter(session_id, prefer=prefer)
        if front:
            self._waiters.appendleft(waiter)
        else:
            self._waiters.append(waiter)
        deadline = time.monotonic() + budget_s
        self.dispatch()
        while waiter.worker is None:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    self._waiters.remove(waiter)
                    return None
                check()
            except BaseException:
                self._waiters.remove(waiter)
                raise
            self._cond.wait(min(remaining, 1.0))
        return waiter.worker

    def dispatch(self) -> None:
        """Assign free workers to waiting calls and wake them."""
        if not self._waiters:
            return
        free = {w.index for w in self._workers if w.state is State.RUNNING and w.index not in self._busy}
        for waiter in list(self._waiters):
            if not free:
                break
            index = self._sessions.get(waiter.session_id) if waiter.session_id else None
            if index is not None and self._workers[index].state in ERROR_STATES | {State.STOPPED}:
                index = None  # that process is gone for good; the session starts over elsewhere
            if index is None:
                index = waiter.prefer if waiter.prefer in free else min(free)
            elif index not in free:
                continue
            free.discard(index)
            self._busy.add(index)
            waiter.worker = self._workers[index]
            self._waiters.remove(waiter)
        self._cond.notify_all()

    def placement_order(self, session_id: str | None) -> list[int]:
        """Workers to reserve an incoming image on, best first: the session's own worker, else
        serving workers that are free, then busy, each with the fewest reservations first."""
        pinned = self._sessions.get(session_id) if session_id else None
        if pinned is not None:
            return [pinned]
        serving = [w for w in self._workers if w.state in SERVING_STATES]
        serving.sort(key=lambda w: (w.index in self._busy, w.reserved_images, w.index))
        return [w.index for w in serving]

    def release(self, worker: Worker, session_id: str | None, end_session: bool) -> None:
        """The call on ``worker`` finished: remember (or forget) its session, serve the next call."""
        self._busy.discard(worker.index)
        if session_id:
            if end_session:
                self._sessions.pop(session_id, None)
            else:
                self._sessions[session_id] = worker.index
                self._sessions.move_to_end(session_id)
                while len(self._sessions) > MAX_SESSIONS:
                    self._sessions.popitem(last=False)
        self.dispatch()

    def forget_sessions(self) -> None:
        self._sessions.clear()
