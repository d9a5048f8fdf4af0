"""The route table: which version serves each pid, the calls in flight per version, and session pins.

Pure state, no processes: ``Router`` drives it. Concurrency model:

- the pid -> version table is copy-on-write: a call reads the current dict once, and a flip replaces
  the whole dict under the table's condition, so a call sees the old or the new table;
- the same condition guards the per-version in-flight counters and the session pins; every call
  increments its version's counter in the same critical section that resolves the version, so "no
  call in flight for the old version" is exact when a switch retires it;
- a session (same session id on the same pid) stays on the version its first call went to; a
  retiring version keeps serving its sessions until they have been idle for the session grace (or
  the drain deadline passes).

The clock is injectable so the pin rules are tested in milliseconds.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from procvision_algorithm_sdk.errors import ErrorCode
from runner.errors import PackageErrorCode, RunnerError

from .activation import Binding

VersionKey = tuple[str, str]
#: Session pins kept at most (least recently used dropped first).
SESSION_PIN_CAPACITY = 10000


@dataclass
class _Pin:
    key: VersionKey
    last_used: float


class RouteTable:
    """pid -> version bindings, in-flight counts and session pins. Thread-safe.

    ``session_grace_s``: how long a session may stay idle and still return to the older version it
    began on. ``drain_timeout_s``: the longest after a flip that any session keeps an old version.
    """

    def __init__(self, session_grace_s: float, drain_timeout_s: float, *,
                 pin_capacity: int = SESSION_PIN_CAPACITY, clock: Callable[[], float] = time.monotonic) -> None:
        self.session_grace_s = session_grace_s
        self.drain_timeout_s = drain_timeout_s
        self._pin_capacity = pin_capacity
        self._clock = clock
        self._cond = threading.Condition()
        self._routes: dict[str, Binding] = {}
        self._inflight: dict[VersionKey, int] = {}
        self._pins: OrderedDict[tuple[str, str], _Pin] = OrderedDict()
        self._closing: set[VersionKey] = set()
        self._flipped_at: dict[str, float] = {}  # pid -> clock time of its last flip

    # --- reading -------------------------------------------------------------------------------

    def now(self) -> float:
        """The table's clock (deadlines passed to ``close_when_settled`` use it)."""
        return self._clock()

    def bindings(self) -> dict[str, Binding]:
        """The current bindings, by pid (a copy)."""
        with self._cond:
            return dict(self._routes)

    def binding(self, pid: str) -> Binding | None:
        """The current binding of ``pid``, if any."""
        with self._cond:
            return self._routes.get(pid)

    def in_flight(self, key: VersionKey) -> int:
        """Calls resolved to ``key`` and not yet left."""
        with self._cond:
            return self._inflight.get(key, 0)

    def bound(self, key: VersionKey) -> bool:
        """Whether any pid is bound to ``key``."""
        with self._cond:
            return any(b.key == key for b in self._routes.values())

    def moved(self, pid: str, key: VersionKey) -> bool:
        """Whether ``pid`` is now bound to a version other than ``key``."""
        with self._cond:
            binding = self._routes.get(pid)
            return binding is not None and binding.key != key

    def pinned(self, key: VersionKey) -> int:
        """Session pins held on ``key`` (for diagnostics and tests)."""
        with self._cond:
            return sum(1 for pin in self._pins.values() if pin.key == key)

    # --- changing the table --------------------------------------------------------------------

    def load(self, bindings: Mapping[str, Binding]) -> None:
        """Replace the whole table (at resume)."""
        with self._cond:
            self._routes = dict(bindings)

    def flip(self, bindings: Iterable[Binding]) -> None:
        """Point each binding's pid at its version, all at once."""
        with self._cond:
            routes = dict(self._routes)
            now = self._clock()
            for binding in bindings:
                routes[binding.pid] = binding
                self._flipped_at[binding.pid] = now
            self._routes = routes

    def unbind(self, pids: Iterable[str]) -> None:
        """Drop the bindings of ``pids``."""
        with self._cond:
            routes = dict(self._routes)
            for pid in pids:
                routes.pop(pid, None)
            self._routes = routes

    def unbind_version(self, key: VersionKey) -> None:
        """Drop every binding to ``key``."""
        with self._cond:
            self._routes = {p: b for p, b in self._routes.items() if b.key != key}

    # --- calls ---------------------------------------------------------------------------------

    def enter(self, pid: str, session_id: str | None) -> VersionKey:
        """Resolve ``pid`` (and its session) to a version and count the call in flight, atomically.

        RunnerError 2009 (naming 1001 invalid_pid) when ``pid`` is unbound.
        """
        with self._cond:
            binding = self._routes.get(pid)
            if binding is None:
                raise RunnerError(PackageErrorCode.NOT_FOUND,
                                  f"no algorithm version is active for pid {pid!r} "
                                  f"({ErrorCode.INVALID_PID.value} {ErrorCode.INVALID_PID.error_name}); "
                                  "activate a version that supports it first",
                                  pid=pid, runtime_code=ErrorCode.INVALID_PID.value)
            key = binding.key
            if session_id:
                pin_key = (pid, session_id)
                pin = self._pins.get(pin_key)
                now = self._clock()
                if pin is not None and self._honour(pin, binding, now):
                    key = pin.key
                    pin.last_used = now
                    self._pins.move_to_end(pin_key)
                else:
                    self._pins[pin_key] = _Pin(key, now)
                    self._pins.move_to_end(pin_key)
                    while len(self._pins) > self._pin_capacity:
                        self._pins.popitem(last=False)
            self._inflight[key] = self._inflight.get(key, 0) + 1
            return key

    def _honour(self, pin: _Pin, binding: Binding, now: float) -> bool:
        """Whether a session still goes to the version it began on (caller holds ``_cond``).

        On the pid's current version: always. On an older one: while that version is not being
        stopped, the session keeps coming back within ``session_grace_s`` (counted from the later of
        its last call and the flip), and the flip is less than ``drain_timeout_s`` ago; a session id
        that is never ended cannot keep an old version alive for ever.
        """
        if pin.key == binding.key:
            return True
        if pin.key in self._closing:
            return False
        flipped = self._flipped_at.get(binding.pid, 0.0)
        return now - max(pin.last_used, flipped) < self.session_grace_s and now - flipped < self.drain_timeout_s

    def leave(self, key: VersionKey, pid: str, session_id: str | None, end_session: bool) -> None:
        """A call resolved by ``enter`` is over; an ended session drops its pin."""
        with self._cond:
            left = self._inflight.get(key, 0) - 1
            if left > 0:
                self._inflight[key] = left
            else:
                self._inflight.pop(key, None)
            if session_id:
                pin = self._pins.get((pid, session_id))
                if pin is not None:
                    if end_session:
                        del self._pins[(pid, session_id)]
                    else:
                        pin.last_used = self._clock()
            self._cond.notify_all()

    def drop_pin(self, pid: str, session_id: str | None, key: VersionKey) -> None:
        """Forget the session's pin if it points at ``key`` (that version went away under it)."""
        if not session_id:
            return
        with self._cond:
            pin = self._pins.get((pid, session_id))
            if pin is not None and pin.key == key:
                del self._pins[(pid, session_id)]

    # --- retiring a version --------------------------------------------------------------------

    def close_when_settled(self, key: VersionKey, session_grace_s: float, deadline: float) -> None:
        """Wait (until ``deadline``, clock time) for no call in flight on ``key`` and its sessions
        idle for ``session_grace_s``, then mark it closing: no session returns to it any more.
        Call ``closed`` once its workers are stopped."""
        began = self._clock()

        def settled() -> bool:
            if self._inflight.get(key, 0):
                return False
            # A session gets the grace from the later of its last call and the start of retirement:
            # one that was idle while the new version started up may still come back for its next step.
            now = self._clock()
            return not any(p.key == key and now - max(p.last_used, began) < session_grace_s
                           for p in self._pins.values())

        with self._cond:
            while not settled():
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                # Pins age without anyone notifying: wake up to re-check them.
                self._cond.wait(timeout=min(remaining, max(session_grace_s / 4, 0.05)))
            self._closing.add(key)
            for pin_key in [k for k, p in self._pins.items() if p.key == key]:
                del self._pins[pin_key]

    def closed(self, key: VersionKey) -> None:
        """``key``'s workers are stopped: it may be bound again."""
        with self._cond:
            self._closing.discard(key)
