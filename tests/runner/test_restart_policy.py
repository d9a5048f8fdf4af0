"""The restart rules of a worker slot, as a pure object on an injected clock."""

from __future__ import annotations

import random

from runner.config import Settings
from runner.supervision.restart_policy import RestartPolicy


def policy(now: list[float], max_failures: int = 2) -> RestartPolicy:
    return RestartPolicy(0.5, 4.0, 60.0, max_failures=max_failures, window_s=10.0, clock=lambda: now[0],
                         rng=random.Random(7))


def test_failures_back_off_exponentially_until_the_crash_loop_gives_up() -> None:
    now = [0.0]
    rules = policy(now)
    first = rules.after_exit(counts=True, up_since=None)
    second = rules.after_exit(counts=True, up_since=None)
    assert not first.give_up and 0.375 <= first.delay_s <= 0.625 and first.recent_failures == 1
    assert not second.give_up and 0.75 <= second.delay_s <= 1.25 and second.recent_failures == 2
    third = rules.after_exit(counts=True, up_since=None)
    assert third.give_up and third.delay_s == 0.0 and third.recent_failures == 3


def test_per_call_recycles_restart_at_the_initial_delay_and_never_give_up() -> None:
    now = [0.0]
    rules = policy(now, max_failures=1)
    for _ in range(5):
        decision = rules.after_exit(counts=False, up_since=None)
        assert not decision.give_up and decision.delay_s == 0.5 and decision.recent_failures == 0


def test_a_healthy_run_resets_the_backoff_and_old_failures_leave_the_window() -> None:
    now = [100.0]
    rules = policy(now, max_failures=5)
    for _ in range(4):
        rules.after_exit(counts=True, up_since=None)
    now[0] = 200.0  # up 70 s since 130: long enough to start over; earlier failures are out of the window
    decision = rules.after_exit(counts=True, up_since=130.0)
    assert decision.delay_s <= 0.625 and decision.recent_failures == 1


def test_explicit_start_forgets_the_history() -> None:
    now = [0.0]
    rules = policy(now, max_failures=1)
    rules.after_exit(counts=True, up_since=None)
    rules.reset()
    decision = rules.after_exit(counts=True, up_since=None)
    assert not decision.give_up and decision.recent_failures == 1 and decision.delay_s <= 0.625


def test_policy_from_settings_uses_the_restart_settings() -> None:
    settings = Settings(root="x", restart_backoff_initial_ms=200, restart_backoff_max_ms=900,
                        crash_loop_max=3, crash_loop_window_s=30)
    rules = RestartPolicy.from_settings(settings)
    assert rules.backoff.initial_s == 0.2 and rules.backoff.maximum_s == 0.9
    assert rules.max_failures == 3 and rules.window_s == 30
