"""When a worker slot restarts its process, and when it gives up: a pure decision object.

It holds no process and starts no thread: the worker asks it after each ended generation and acts
on the answer, so its rules (exponential backoff, reset after a healthy run, crash-loop limit) are
tested with an injected clock and random source in microseconds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from runner.config import Settings

from .backoff import Backoff, CrashLoop


@dataclass(frozen=True)
class RestartDecision:
    """What to do after a process generation ended."""

    #: True: too many failures in the window; the slot goes to FAILED until an explicit start.
    give_up: bool
    #: Seconds to wait before the next start (0 when giving up).
    delay_s: float
    #: Failures counted in the crash-loop window, this one included.
    recent_failures: int


class RestartPolicy:
    """Backoff and crash-loop rules of one worker slot.

    Only failures of the process count (``counts`` True: unexpected exits, failed handshakes, lost
    heartbeats). A recycle for a per-call reason (a call's timeout, a FatalError) restarts after the
    initial delay and never leads to giving up: the process itself was fine.
    """

    def __init__(self, initial_s: float, maximum_s: float, reset_after_s: float, max_failures: int,
                 window_s: float, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.clock = clock
        self.backoff = Backoff(initial_s, maximum_s, reset_after_s, rng=rng, clock=clock)
        self.crash_loop = CrashLoop(max_failures, window_s, clock=clock)

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] = time.monotonic,
                      rng: random.Random | None = None) -> RestartPolicy:
        """The policy the settings describe (``restart_backoff_*``, ``crash_loop_*``)."""
        return cls(settings.restart_backoff_initial_ms / 1000, settings.restart_backoff_max_ms / 1000,
                   settings.restart_backoff_reset_after_s, settings.crash_loop_max, settings.crash_loop_window_s,
                   clock=clock, rng=rng)

    @property
    def max_failures(self) -> int:
        return self.crash_loop.max_crashes

    @property
    def window_s(self) -> float:
        return self.crash_loop.window_s

    def reset(self) -> None:
        """Forget the history: an explicit start begins afresh."""
        self.backoff.reset()
        self.crash_loop.reset()

    def after_exit(self, counts: bool, up_since: float | None) -> RestartDecision:
        """Decide after a generation ended; ``up_since`` is when it became ready (clock time) or None.

        A generation that stayed up long enough first resets the backoff, so a worker that crashes
        once a day does not wait the maximum delay.
        """
        self.backoff.reset_if_healthy(up_since)
        if not counts:
            return RestartDecision(False, self.backoff.initial_s, self.crash_loop.recent)
        if self.crash_loop.record():
            return RestartDecision(True, 0.0, self.crash_loop.recent)
        return RestartDecision(False, self.backoff.next_delay(), self.crash_loop.recent)
