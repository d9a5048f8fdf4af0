"""One worker slot of a version: a worker process at a time, kept alive.

A ``Worker`` gets each process from its ``WorkerLauncher`` (``launcher.py``; the real one spawns
``<venv>/bin/python -m procvision_algorithm_sdk.adapter`` through the SDK's ``AdapterClient``),
confirms the algorithm loaded, pings it, runs calls one at a time with deadlines, and restarts the
process when it crashes, hangs, misses heartbeats or asks to be recycled: the slot waits in
BACKOFF for the delay its ``RestartPolicy`` decides, then goes through STARTING again. Too many
crashes in a window end in FAILED, with the exit code and stderr tail kept, until an explicit
``start``. Only failures of the process count toward that limit (unexpected exits, failed
handshakes, lost heartbeats); recycling after a call's timeout or a FatalError is a per-call event
that never puts the version in FAILED.

Each process is one ``Generation``. Every failure path of a generation funnels into
``_handle_failure``, which runs once per generation no matter whether the call thread, the
heartbeat or the stdout reader noticed first, and ignores generations that are no longer current.

Every crash, recycle, restart and FAILED transition is noted in the version's worker.log as a line
prefixed ``[runner]``.
"""

from __future__ import annotations

import threading
import time

from procvision_algorithm_sdk.errors import ErrorCode

from .generation import Generation, KillReason
from .states import LIVE_STATES, SERVING_STATES, State, SupervisorEvent, is_allowed
from .worker_calls import WorkerCalls
from .worker_startup import WorkerStartup
from .worker_text import TAIL_LINES, exit_text, short_text

#: States ``stop`` may settle from once the process is gone (a start racing it keeps its state).
_SETTLED = frozenset({State.STOPPING, State.STOPPED, State.FAILED, State.INVALID, State.INSTALLED})


class Worker(WorkerStartup, WorkerCalls):
    """One worker slot: owns successive process generations of the same version."""

    def start(self) -> None:
        """Begin bringing the worker up (asynchronously). Clears a FAILED/STOPPED state and the
        crash history: this is the explicit start that a crash loop waits for."""
        with self._lock:
            if self.state in LIVE_STATES:
                return
            self._run_stop = threading.Event()
            self.restart_policy.reset()
            self.first_attempt_done.clear()
            self.first_failure = None
            self.machine.transition(State.STARTING, "start requested")
            run_stop = self._run_stop
        threading.Thread(target=self._spawn, args=(run_stop, True), daemon=True,
                         name=f"pv-start-{self.spec.name}-{self.index}").start()

    def _handle_failure(self, gen: Generation, message: str, code: str, exit_code: int | None,
                        stderr_tail: list[str], killed_by_runner: bool = False) -> None:
        """End a process generation that died or was recycled; restart it or give up (FAILED).

        ``killed_by_runner``: the exit code is the runner's SIGKILL after a failed start, so the
        message (the worker's own reason) is the cause, not the signal.
        """
        with self._lock:
            if gen is not self._gen or gen.handled:
                return
            gen.handled = True
            gen.ended.set()
            kill_reason = gen.kill_reason
            run_stop = self._run_stop
            planned_stop = self.state in (State.STOPPING, State.STOPPED) or run_stop.is_set()
            if not planned_stop and self.state is not State.BACKOFF:
                # Mark the worker down before releasing the lock, so no call is dispatched to the
                # dead process while it is being cleaned up.
                self.machine.transition(State.BACKOFF, f"worker down: {message}", pid=gen.pid)
        client, launched = gen.client, gen.launched
        if client is not None:
            client.kill()
            if exit_code is None:
                exit_code = client.wait(2.0)
        memory = launched.memory_cause(exit_code, list(stderr_tail)) if launched and not kill_reason else None
        if memory is not None:
            message, code, killed_by_runner = memory, ErrorCode.MEMORY_LIMIT_EXCEEDED.value, False
        self._free(gen)
        if planned_stop:
            return
        self._after_exit(gen, kill_reason, message, code, exit_code, stderr_tail, killed_by_runner, run_stop)

    def _after_exit(self, gen: Generation, kill_reason: KillReason | None, message: str, code: str,
                    exit_code: int | None, stderr_tail: list[str], killed_by_runner: bool,
                    run_stop: threading.Event) -> None:
        """Record why a generation ended and follow the restart policy: schedule a restart or fail."""
        reason = short_text(kill_reason.message if kill_reason else message)
        # Recycling after a call's timeout or a FatalError is about that call, not the process.
        counts = kill_reason.counts if kill_reason else True
        tail = list(stderr_tail)[-TAIL_LINES:]
        ended = "stopped by the runner" if killed_by_runner else exit_text(exit_code)
        if not kill_reason:
            self._note(f"worker process ended ({ended}): {reason}")
        policy = self.restart_policy
        with self._lock:
            self.last_error = {"reason": reason, "code": kill_reason.code if kill_reason else code,
                               "exit_code": exit_code, "stderr_tail": tail, "at": time.time()}
            if run_stop.is_set():  # a stop came in while the process was cleaned up: it owns the state
                return
            decision = policy.after_exit(counts, gen.up_since)
            if counts:
                self.counters["crashes"] += 1
            if decision.give_up:
                why = (f"crash loop: more than {policy.max_failures} failures within "
                       f"{policy.window_s:g}s; last: {reason} ({ended})")
                self.last_error["reason"] = why
                self.machine.transition(State.FAILED, why)
                self._note(f"FAILED, no more restarts until an explicit start: {why}")
                self.machine.emit(SupervisorEvent("failed", self.spec.name, self.spec.version, self.index,
                                                  None, None, State.FAILED, why,
                                                  {"exit_code": exit_code, "stderr_tail": tail}))
                return
            delay = decision.delay_s
            self.restart_at = time.time() + delay
            self.counters["restarts"] += 1
            attempt = self.counters["restarts"]
            self.machine.transition(State.BACKOFF, f"restart in {delay:.2f}s: {reason}")
        self._note(f"restart #{attempt} in {delay:.2f}s (backoff; {decision.recent_failures} of at most "
                   f"{policy.max_failures} failures counted in the last {policy.window_s:g}s)")
        if counts:  # a recycle already had its "recycle" event
            self._event("crash", reason, exit_code=exit_code, stderr_tail=tail, restart_in_s=delay)
        threading.Thread(target=self._restart_after, args=(delay, run_stop), daemon=True,
                         name=f"pv-restart-{self.spec.name}-{self.index}").start()

    def _restart_after(self, delay: float, run_stop: threading.Event) -> None:
        if run_stop.wait(delay):
            return
        with self._lock:
            first, self._carry_first = self._carry_first, False
        self._note("restarting the worker process")
        self._event("restart", "restarting after backoff")
        self._spawn(run_stop, first)

    def recycle(self, reason: str, code: ErrorCode, counts: bool = True) -> None:
        """Kill the current process on purpose (timeout, fatal error, lost heartbeat); it restarts.

        ``counts`` False (a call's timeout or FatalError) keeps it out of the crash-loop count.
        """
        with self._lock:
            gen = self._gen
            client = gen.client if gen is not None else None
            if gen is None or client is None or self.state not in SERVING_STATES:
                return
            gen.kill_reason = KillReason(reason, code.value, counts)
            self.machine.transition(State.BACKOFF, f"recycling: {reason}", pid=client.pid)
        self._note(f"recycling pid {client.pid} ({code.value} {code.name.lower()}): {short_text(reason)}")
        self._event("recycle", reason, code=code.value)
        client.kill()
        self._handle_failure(gen, reason, code.value, client.wait(5.0), client.stderr_tail)

    def stop(self, grace_s: float, final_state: State = State.STOPPED, reason: str = "stopped") -> None:
        """Stop for good (until ``start``): shutdown frame, then SIGTERM, then SIGKILL.

        ``final_state`` FAILED is for a start that never produced a ready worker.
        """
        with self._lock:
            self._run_stop.set()
            gen = self._gen
            if gen is not None:
                gen.ended.set()
            if self.state in LIVE_STATES:
                self.machine.transition(State.STOPPING, "stop requested", pid=self.pid)
        client = gen.client if gen is not None else None
        if client is not None:
            # A start may be between registering its client and spawning the process: give the
            # spawn a moment so the process it makes is shut down here, not left running.
            deadline = time.monotonic() + 2.0
            while client.pid is None and time.monotonic() < deadline:
                time.sleep(0.01)
            client.shutdown(timeout=grace_s, term_timeout=min(grace_s, 3.0))
        if gen is not None:
            self._free(gen)
        with self._lock:
            # The stopped process's exit callback may still be on its way (its reader thread waits
            # for the last stderr): it must not be taken for a crash of a start that follows.
            if self._gen is not None:
                self._gen.handled = True
            # A worker that never ran (INSTALLED) or cannot run (INVALID) keeps its state rather
            # than becoming FAILED; a start that raced this stop keeps its live state.
            state = self.state
            if state is not final_state and state in _SETTLED and is_allowed(state, final_state):
                self.machine.transition(final_state, reason)
            self.busy_request_id = None


__all__ = ["Worker"]
