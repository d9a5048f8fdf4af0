"""The one polling helper of the test suite: wait for a condition, never for a fixed time.

The suite must pass on a busy 2-core machine, where starting a worker process or answering a request
can take ten times longer than on an idle one. So the default deadline is generous: it only bounds how
long a broken test hangs, it never decides whether a working one passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar, overload

T = TypeVar("T")

#: How long a condition may take before the test fails (a loaded machine is 5-10x slower).
DEFAULT_TIMEOUT_S = 120.0
#: How often the condition is checked.
INTERVAL_S = 0.02


@overload
def wait_until(predicate: Callable[[], T | None], timeout_s: float = ..., what: str | Callable[[], str] = ...,
               interval_s: float = ..., *, fail: Literal[True] = ...) -> T: ...


@overload
def wait_until(predicate: Callable[[], T | None], timeout_s: float = ..., what: str | Callable[[], str] = ...,
               interval_s: float = ..., *, fail: Literal[False]) -> T | None: ...


def wait_until(predicate: Callable[[], T | None], timeout_s: float = DEFAULT_TIMEOUT_S,
               what: str | Callable[[], str] = "condition", interval_s: float = INTERVAL_S, *,
               fail: bool = True) -> T | None:
    """Call ``predicate`` until it returns something truthy and return that value.

    Fails the test (AssertionError naming ``what``) if it is still falsy after ``timeout_s`` seconds;
    it is checked once more at the deadline, so a slow scheduler cannot make it fail early. ``what``
    may be a function, called only on a timeout, when the message needs state read at that moment
    (a process's last stderr lines). With ``fail=False`` a timeout returns the last falsy value
    instead: for scripts that report what they saw rather than fail (tests/support/offline_station.py).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            value = predicate()
            if value or not fail:
                return value
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {described}")
        time.sleep(interval_s)
