"""Restart pacing: exponential backoff with jitter, and crash-loop detection."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable


class Backoff:
    """Delays between restarts: ``initial * 2**n`` capped at ``maximum``, with +-25% jitter.

    ``reset_if_healthy`` starts over once a worker has stayed up ``reset_after_s`` seconds, so a
    worker that crashes once a day does not wait the maximum delay.
    """

    def __init__(self, initial_s: float, maximum_s: float, reset_after_s: float,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if initial_s <= 0 or maximum_s <= 0:
            raise ValueError("backoff delays must be positive")
        self.initial_s = initial_s
        self.maximum_s = max(maximum_s, initial_s)
        self.reset_after_s = reset_after_s
        self._rng = rng or random.Random()
        self._clock = clock
        self.attempt = 0

    def next_delay(self) -> float:
        """The delay before the next restart; each call counts one more attempt."""
        base = min(self.maximum_s, self.initial_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        # Jitter spreads restarts of many workers that died together (e.g. after a shared resource failed).
        return min(self.maximum_s, max(0.0, base * self._rng.uniform(0.75, 1.25)))

    def reset_if_healthy(self, up_since: float | None) -> None:
        """Start over if the worker has been up since ``up_since`` (clock time) for long enough."""
        if up_since is not None and self._clock() - up_since >= self.reset_after_s:
            self.attempt = 0

    def reset(self) -> None:
        self.attempt = 0


class CrashLoop:
    """Counts crashes in a sliding window; ``record`` says whether the limit is now exceeded."""

    def __init__(self, max_crashes: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_crashes = max_crashes
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()

    def record(self) -> bool:
        """Note one crash now; True if more than ``max_crashes`` happened within the window."""
        now = self._clock()
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        return len(self._times) > self.max_crashes

    @property
    def recent(self) -> int:
        now = self._clock()
        return sum(1 for t in self._times if now - t <= self.window_s)

    def reset(self) -> None:
        self._times.clear()
