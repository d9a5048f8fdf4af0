"""The liveness check of one worker process: a ping every interval, a pong within the grace."""

from __future__ import annotations

import threading
from collections.abc import Callable

from procvision_algorithm_sdk.client import CallTimedOut, WorkerFailure

from .launcher import ProcessClient


def run_heartbeat(client: ProcessClient, interval_s: float, grace_s: float, stop: threading.Event,
                  should_ping: Callable[[], bool], call_gate: threading.Lock | None,
                  on_lost: Callable[[str], None]) -> None:
    """Ping ``client`` until ``stop`` is set or the process is gone; call ``on_lost`` once when a
    pong is missing (a wedged or SIGSTOPped process).

    ``call_gate`` is given for workers that answer no ping while a call runs (public SDKs): the
    heartbeat skips while a call holds it, because the call's own deadline watches the worker then.
    """
    while not stop.wait(interval_s):
        if not should_ping():
            continue
        if call_gate is not None and not call_gate.acquire(blocking=False):
            continue
        try:
            client.ping(grace_s)
        except CallTimedOut:
            if not stop.is_set():
                on_lost(f"heartbeat lost: no pong within {grace_s * 1000:.0f} ms (worker wedged or stopped)")
            return
        except WorkerFailure:
            return  # the process ended: its exit handler takes over
        finally:
            if call_gate is not None:
                call_gate.release()
