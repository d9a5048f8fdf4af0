"""The workers of one running version, and how calls reach them.

Calls wait in a bounded FIFO queue (``settings.queue_max``; beyond it they are rejected at once with
1015 queue_full). A free worker takes the oldest waiting call it may serve: calls that carry a
session id go to the worker that served the session before (session state lives in one process).
A call has one deadline (its timeout) for everything: the wait in the queue, the attempt and any
retry. Only retryable failures (the algorithm's RecoverableError) are sent again, and only while the
deadline allows; a call that runs out of time ends with 1005 and its worker is recycled.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk.errors import ErrorCode
from runner.config import Settings
from runner.store.layout import RootLayout

from . import pool_refusals as refusals
from .dialects import CallRequest, Dialect
from .dialects.reservation import ImageReservation
from .dispatch import Dispatcher
from .image_size import LastImageSize
from .launcher import WorkerLauncher
from .logs import RotatingLineLog
from .outcomes import error_outcome
from .pool_view import first_set, latest_error, pool_status
from .spec import CallOutcome, WorkerSpec
from .states import LIVE_STATES, TERMINAL_STATES, EventSink, State, SupervisorEvent, derive_version_state
from .worker import Worker
from .worker_text import short_text


class VersionPool:
    """The worker processes of one version (``settings.workers_per_version`` of them)."""

    def __init__(self, spec: WorkerSpec, settings: Settings, layout: RootLayout, shm_root: Path,
                 launcher: WorkerLauncher, sink: EventSink | None = None,
                 image_size: LastImageSize | None = None) -> None:
        self.spec = spec
        self.launcher = launcher
        self.settings = settings
        self._sink = sink
        self.log = RotatingLineLog(layout.log_dir(spec.name, spec.version) / "worker.log", settings.log_max_bytes,
                                   settings.log_backups, settings.stderr_tail_lines)
        self._cond = threading.Condition()
        self._lifecycle = threading.Lock()  # serialises start/stop of the whole pool
        self.workers = [Worker(spec, i, settings, self.log, shm_root / f"{_safe(spec.name)}@{_safe(spec.version)}",
                               launcher, self._on_event, self._claim_info, image_size=image_size)
                        for i in range(settings.workers_per_version)]
        self._dispatcher = Dispatcher(self._cond, self.workers)
        self._accepting = False
        self._stopping = False
        self._in_flight = 0
        self._info_claimed = False  # get_info is fetched once per start, by the first ready worker

    # --- views ---------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return derive_version_state([w.state for w in self.workers], stopping=self._stopping)

    @property
    def dialect(self) -> Dialect | None:
        return first_set(w.dialect for w in self.workers)

    @property
    def hello(self) -> dict[str, Any] | None:
        return first_set(w.hello for w in self.workers)

    @property
    def info(self) -> dict[str, Any] | None:
        return first_set(w.info for w in self.workers)

    @property
    def info_error(self) -> dict[str, Any] | None:
        """Why fetching get_info after start failed (it is not fatal), or None."""
        return None if self.info is not None else latest_error(w.info_error for w in self.workers)

    def _claim_info(self) -> bool:
        with self._cond:
            if self._info_claimed or self.info is not None:
                return False
            self._info_claimed = True
            return True

    @property
    def last_error(self) -> dict[str, Any] | None:
        return latest_error(w.last_error for w in self.workers)

    def in_flight(self) -> int:
        """Calls admitted and not finished (queued or running)."""
        with self._cond:
            return self._in_flight

    def queue_depth(self) -> int:
        with self._cond:
            return self._dispatcher.depth()

    def stderr_tail(self, n: int) -> list[str]:
        """The last ``n`` stderr lines of this version's workers (oldest first)."""
        return self.log.tail(n)

    def status(self) -> dict[str, Any]:
        """JSON-able status for the API and CLI (``pool_view.pool_status``)."""
        return pool_status(self)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, wait_ready: bool = True) -> None:
        """Start every worker. With ``wait_ready``, return once one is ready; if none could start,
        stop them all (state FAILED) and raise RunnerError naming the exit code and stderr tail."""
        with self._lifecycle:
            with self._cond:
                self._accepting = True
                self._stopping = False
                self._info_claimed = False
            for worker in self.workers:
                worker.start()
            if wait_ready:
                self._wait_ready()

    def ready_budget_s(self) -> float:
        """How long a start may take to produce a ready worker (handshake, get_info, slack)."""
        s = self.settings
        return (s.handshake_timeout_ms + s.info_timeout_ms) / 1000 + 10.0

    def wait_first_attempt(self, timeout_s: float) -> bool:
        """Wait until a worker serves (True) or every worker's first start attempt has ended or
        ``timeout_s`` passed (False). Failed workers keep restarting with backoff meanwhile."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if any(w.state in (State.RUNNING, State.EXECUTING) for w in self.workers):
                    return True
                remaining = deadline - time.monotonic()
                if all(w.first_attempt_done.is_set() for w in self.workers) or remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.2))

    def _wait_ready(self) -> None:
        budget = self.ready_budget_s()
        if self.wait_first_attempt(budget):
            return
        failure = next((w.first_failure for w in self.workers if w.first_failure is not None), None)
        why = failure.message if failure is not None else f"no worker became ready within {budget:.0f}s"
        self.log.write(f"FAILED, start given up (start it again after fixing the cause): {short_text(why)}",
                       "[runner] ")
        for worker in self.workers:
            worker.stop(0.5, final_state=State.FAILED, reason="no worker became ready")
        with self._cond:
            self._accepting = False
            self._cond.notify_all()
        raise refusals.start_failed(self.spec, failure, budget, self.stderr_tail(20) if failure is None else [])

    def stop(self, drain_timeout_s: float | None = None) -> None:
        """Stop taking calls, let admitted ones finish (up to ``drain_timeout_s``), stop the workers."""
        drain = self.settings.shutdown_grace_s if drain_timeout_s is None else drain_timeout_s
        with self._lifecycle:
            deadline = time.monotonic() + drain
            with self._cond:
                self._accepting = False
                self._stopping = True
                while self._in_flight > 0:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            threads = [threading.Thread(target=w.stop, args=(self.settings.shutdown_grace_s,), daemon=True)
                       for w in self.workers]
            for thread in threads:
                thread.start()
            # Worker.stop is bounded: shutdown grace + SIGTERM wait (<= 3 s) + SIGKILL wait (5 s).
            for thread in threads:
                thread.join(self.settings.shutdown_grace_s + 10.0)
            with self._cond:
                self._dispatcher.forget_sessions()
                self._cond.notify_all()

    def close(self) -> None:
        """Release the log file (after stop)."""
        self.log.close()

    def _on_event(self, event: SupervisorEvent) -> None:
        if self._sink is not None:
            try:
                self._sink(event)
            except Exception as exc:  # noqa: BLE001 - a faulty observer must not break supervision
                self.log.write(f"event observer failed on {event.kind}: {exc!r}", "[runner] ")
        with self._cond:
            self._dispatcher.dispatch()

    # --- calls ---------------------------------------------------------------------------------

    def default_timeout_s(self, phase: str) -> float:
        s = self.settings
        ms = {"info": s.info_timeout_ms, "pre": s.pre_execute_timeout_ms}.get(phase, s.execute_timeout_ms)
        return ms / 1000

    def call(self, request: CallRequest, timeout_s: float | None = None) -> CallOutcome:
        """Run ``request`` on a worker of this version and return what happened.

        Worker-side failures come back as ERROR outcomes (1005 timeout, 1011 crash, the algorithm's
        codes...). Raises RunnerError only for 1015 queue_full and 1016 worker_unavailable.
        """
        timeout = timeout_s if timeout_s is not None else self.default_timeout_s(request.phase)
        with self._cond:
            self._check_available(admitting=True)
            if self._dispatcher.depth() >= self.settings.queue_max:
                raise refusals.queue_full(self.spec, self._dispatcher.depth(), self.settings.queue_max)
            self._in_flight += 1
        try:
            return self._call_with_retries(request, timeout)
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _call_with_retries(self, request: CallRequest, timeout: float) -> CallOutcome:
        # One deadline covers the whole call: queue wait, every attempt and every retry. An attempt
        # gets what is left of it, so a hung call ends after ``timeout``, not after each retry.
        started = time.monotonic()
        deadline = started + timeout
        retries = 0
        requeues = 0
        queued_s = worked_s = 0.0
        while True:
            remaining = deadline - time.monotonic()
            worker = None
            if remaining > 0:
                worker = self._acquire(request.session_id, remaining, front=retries > 0 or requeues > 0,
                                       prefer=_reserving_worker(request))
            acquired = time.monotonic()
            queued_s += acquired - (deadline - remaining)
            remaining = deadline - acquired
            if worker is None or remaining <= 0:
                if worker is not None:
                    with self._cond:
                        self._dispatcher.release(worker, None, False)  # not run: affinity unchanged
                outcome = self._expired(request, timeout, started, retries)
            else:
                try:
                    outcome = worker.call(request, remaining)
                finally:
                    worked_s += time.monotonic() - acquired
                    with self._cond:
                        self._dispatcher.release(worker, request.session_id, request.end_session)
                if outcome.timed_out:
                    outcome.message = (f"{request.phase} call got no reply within its timeout of "
                                       f"{timeout * 1000:.0f} ms (queue wait included); the worker was "
                                       "recycled, later calls run on a fresh one")
                    outcome.details["timeout_ms"] = round(timeout * 1000)
            budget_left = deadline - time.monotonic() > 0
            if outcome.not_sent and requeues < 3 and budget_left:
                # The worker went down between dispatch and send (it crashed while idle): the call
                # never reached it, so it simply waits for a worker again.
                requeues += 1
                continue
            # Retrying is safe: info, pre and execute with the same inputs have no side effects the
            # runner relies on, and a recycled worker is replaced before the retry runs.
            if retries < self.settings.max_retries and _retryable(outcome) and worker is not None and budget_left:
                retries += 1
                continue
            outcome.retries = retries
            outcome.latency_ms = (time.monotonic() - started) * 1000
            outcome.queue_ms, outcome.worker_ms = queued_s * 1000, worked_s * 1000
            return outcome

    def _expired(self, request: CallRequest, timeout: float, started: float, retries: int) -> CallOutcome:
        """The 1005 outcome of a call whose deadline passed before a worker could take it."""
        waited = (time.monotonic() - started) * 1000
        return error_outcome(ErrorCode.TIMEOUT,
                             f"{request.phase} call reached its timeout of {timeout * 1000:.0f} ms while waiting "
                             f"for a free worker of {self.spec.name} {self.spec.version} (busy or restarting); "
                             "it was not run. Retry later, add workers or raise the timeout",
                             self.dialect, None, waited, phase=request.phase, queued=True,
                             timeout_ms=round(timeout * 1000), retries_done=retries)

    def _check_available(self, admitting: bool = False) -> None:
        # Calls admitted before a stop keep waiting (they drain); new ones are refused.
        if admitting and not self._accepting:
            raise refusals.not_accepting(self.spec, self.state.value, self.last_error)
        if all(w.state in TERMINAL_STATES for w in self.workers):
            raise refusals.all_workers_down(self.spec, self.state.value, self.last_error)

    def _acquire(self, session_id: str | None, budget_s: float, front: bool,
                 prefer: int | None = None) -> Worker | None:
        with self._cond:
            return self._dispatcher.acquire(session_id, budget_s, front, self._check_available, prefer)

    def reserve_image(self, height: int, width: int, channels: int,
                      session_id: str | None = None) -> ImageReservation | None:
        """Shared memory on the worker likely to run a call, for its image still arriving (see
        ``dialects.reservation``). None: no worker can take one now (the image is copied instead)."""
        with self._cond:
            if not self._accepting:
                return None
            order = self._dispatcher.placement_order(session_id)
        for index in order:
            reservation = self.workers[index].reserve_image(height, width, channels)
            if reservation is not None:
                return reservation
        return None

    def live(self) -> bool:
        return any(w.state in LIVE_STATES for w in self.workers)


def _reserving_worker(request: CallRequest) -> int | None:
    """The worker whose segment already holds the call's image (it passes it on without a copy)."""
    reservation = request.image.reservation if request.image is not None else None
    return reservation.worker_index if reservation is not None else None


def _retryable(outcome: CallOutcome) -> bool:
    if outcome.status == "OK":
        return False
    # Only the algorithm's own "try again" (RecoverableError) is retried. A timeout used up the
    # call's deadline; a crash or fatal error would most likely repeat on the same input.
    return outcome.retryable


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)
