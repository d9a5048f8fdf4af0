"""One worker slot of a version: a worker process at a time, kept alive.

A ``Worker`` spawns ``<venv>/bin/python -m procvision_algorithm_sdk.adapter`` through the SDK's
``AdapterClient``, confirms the algorithm loaded, pings it, runs calls one at a time with deadlines,
and restarts the process (exponential backoff with jitter) when it crashes, hangs, misses heartbeats
or asks to be recycled. Too many crashes in a window end in FAILED, with the exit code and stderr
tail kept, until an explicit ``start``. Only failures of the process count toward that limit
(unexpected exits, failed handshakes, lost heartbeats); recycling after a call's timeout or a
FatalError is a per-call event that never puts the version in FAILED.

Every crash, recycle, restart and FAILED transition is noted in the version's worker.log as a line
prefixed ``[runner]``.

Every failure path of a process generation funnels into ``_handle_failure``, which runs once per
generation no matter whether the call thread, the heartbeat or the stdout reader noticed first.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.client import (
    AdapterClient,
    CallTimedOut,
    HandshakeFailed,
    WorkerFailure,
)
from procvision_algorithm_sdk.errors import ErrorCode
from runner.config import Settings
from runner.errors import RunnerError

from .backoff import Backoff, CrashLoop
from .dialects import (
    BUSY_PONG_CAPABILITY,
    CallRequest,
    Dialect,
    ImageHandoff,
    build_call_data,
    capabilities_of,
    strategy_for,
)
from .dialects.reservation import ImageReservation
from .heartbeat import run_heartbeat
from .launch import LaunchedWorker, Launcher, handshake, memory_message
from .logs import RotatingLineLog
from .outcomes import error_outcome, outcome_from_frame
from .sandbox import segment_dir
from .spec import CallOutcome, WorkerSpec
from .states import LIVE_STATES, SERVING_STATES, EventSink, State, StateMachine, SupervisorEvent

_TAIL = 20  # stderr lines kept in errors and outcomes
_QUOTE = 300  # characters of worker output quoted in a message


def short_text(text: str, limit: int = _QUOTE) -> str:
    """``text`` on one line and at most ``limit`` characters: a multi-line text (a traceback) keeps
    its first and last lines, which name where and what."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    one = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}" if lines else ""
    return one if len(one) <= limit else one[:limit - 1] + "\u2026"


def exit_text(code: int | None) -> str:
    """How a process ended, for people: ``exit code 7`` or ``killed by SIGKILL``."""
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Worker:
    """One worker slot: owns successive process generations of the same version."""

    def __init__(self, spec: WorkerSpec, index: int, settings: Settings, log: RotatingLineLog,
                 shm_root: Path, launcher: Launcher, sink: EventSink,
                 claim_info: Callable[[], bool] | None = None) -> None:
        self.spec = spec
        self.index = index
        self.settings = settings
        self.log = log
        self.shm_root = shm_root
        self.launcher = launcher
        self._sink = sink
        # Says (once per pool start) that this worker should fetch get_info for the version.
        self._claim_info = claim_info
        self.machine = StateMachine(spec.name, spec.version, index, sink)
        self._lock = threading.RLock()
        self._client: AdapterClient | None = None
        self._launched: LaunchedWorker | None = None  # the client's process tree and its limit
        self._generation = 0
        self._handled_generation = 0
        # The generation whose handshake is running: its spawn thread reports its failure (with the
        # worker's own reason), so the exit callback of the process it killed must not race it.
        self._starting_generation = 0
        # A start attempt whose process was recycled for a hung get_info continues in its restart.
        self._attempt_is_first = False
        self._carry_first = False
        self._handoff: ImageHandoff | None = None
        self._image_shape: tuple[int, int, int] | None = None  # of the last upload reserved here
        self._shm_dir: Path | None = None
        self._run_stop = threading.Event()  # set by stop(): cancels pending restarts
        self._gen_stop = threading.Event()  # set when a generation ends: stops its heartbeat
        # Public workers answer no ping during a call: their heartbeat skips while this is held.
        self._call_gate = threading.Lock()
        self._kill_reason: dict[str, Any] | None = None
        self.backoff = Backoff(settings.restart_backoff_initial_ms / 1000, settings.restart_backoff_max_ms / 1000,
                               settings.restart_backoff_reset_after_s)
        self.crash_loop = CrashLoop(settings.crash_loop_max, settings.crash_loop_window_s)
        self.dialect: Dialect | None = None
        self.hello: dict[str, Any] | None = None
        self.info: dict[str, Any] | None = None
        #: Why fetching get_info after start failed (not fatal), or None.
        self.info_error: dict[str, Any] | None = None
        self.started_at: float | None = None
        self._up_since: float | None = None
        self.busy_request_id: str | None = None
        self.restart_at: float | None = None
        self.last_error: dict[str, Any] | None = None
        self.counters = {"calls": 0, "errors": 0, "timeouts": 0, "restarts": 0, "crashes": 0}
        # Set once the first start attempt after an explicit start() has finished, either way.
        self.first_attempt_done = threading.Event()
        self.first_failure: WorkerFailure | None = None

    # --- properties ----------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def pid(self) -> int | None:
        client = self._client
        return client.pid if client is not None else None

    @property
    def capabilities(self) -> list[str]:
        return capabilities_of(self.hello)

    @property
    def pongs_while_busy(self) -> bool:
        return BUSY_PONG_CAPABILITY in self.capabilities

    def status(self) -> dict[str, Any]:
        """JSON-able view of this worker."""
        return {"index": self.index, "pid": self.pid, "state": self.state.value,
                "restarts": self.counters["restarts"], "started_at": self.started_at,
                "busy_request_id": self.busy_request_id, "restart_at": self.restart_at}

    def _event(self, kind: str, reason: str, **details: Any) -> None:
        self._sink(SupervisorEvent(kind, self.spec.name, self.spec.version, self.index, self.pid,
                                   self.state, self.state, reason, details))

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Begin bringing the worker up (asynchronously). Clears a FAILED/STOPPED state and the
        crash history: this is the explicit start that a crash loop waits for."""
        with self._lock:
            if self.state in LIVE_STATES:
                return
            self._run_stop = threading.Event()
            self.crash_loop.reset()
            self.backoff.reset()
            self.first_attempt_done.clear()
            self.first_failure = None
            self.machine.transition(State.STARTING, "start requested")
            run_stop = self._run_stop
        threading.Thread(target=self._spawn, args=(run_stop, True), daemon=True,
                         name=f"pv-start-{self.spec.name}-{self.index}").start()

    def _spawn(self, run_stop: threading.Event, first: bool) -> None:
        with self._lock:
            self._attempt_is_first = first
        carried = False
        try:
            carried = self._spawn_once(run_stop)
        finally:
            if first and not carried:
                self.first_attempt_done.set()

    def _spawn_once(self, run_stop: threading.Event) -> bool:
        """One start attempt. True if it was recycled for a per-call reason (a hung get_info) and
        its restart carries on the same attempt (so a waiting start does not give up on it)."""
        with self._lock:
            if run_stop.is_set() or self.state is not State.STARTING:
                return False
            self._generation += 1
            generation = self._generation
            self._kill_reason = None
            self.restart_at = None
        spec = self.spec
        if not Path(spec.python).is_file() or not Path(spec.package_dir).is_dir():
            reason = (f"cannot start: interpreter {spec.python} or package folder {spec.package_dir} is missing; "
                      "reinstall the version")
            with self._lock:
                self.last_error = {"reason": reason, "exit_code": None, "stderr_tail": [], "at": time.time()}
                self.first_failure = WorkerFailure(reason, ErrorCode.WORKER_UNAVAILABLE.value)
                self._gen_stop = threading.Event()
                self.machine.transition(State.INVALID, reason, allowed_from=[State.STARTING])
            return False
        shm_dir = self.shm_root / f"w{self.index}-g{generation}"
        shm_dir.mkdir(parents=True, exist_ok=True)
        prefix = f"[w{self.index}] "
        try:
            launched = self.launcher.launch(spec, self.index, shm_dir, lambda line: self.log.write(line, prefix),
                                            lambda c, code, message: self._on_exit(generation, c, code, message))
        except OSError as exc:  # its memory cgroup could not be made: never run it unlimited
            return self._not_placed(generation, shm_dir, exc)
        client = launched.client
        gen_stop = threading.Event()
        with self._lock:
            if run_stop.is_set():  # stop() ran since the check above: it must not miss this process
                launched.end()
                shutil.rmtree(shm_dir, ignore_errors=True)
                return False
            self._client = client
            self._launched = launched
            self._gen_stop = gen_stop
            self._shm_dir = shm_dir
            self._handoff = None
            self._starting_generation = generation
        try:
            try:
                hello, dialect, info = handshake(client, self.settings)
            except OSError as exc:  # the interpreter could not be executed at all
                client.kill()
                raise HandshakeFailed(f"cannot start the worker process: {exc}", exit_code=None) from exc
            if info is None and strategy_for(dialect).fetches_info_after_start and self._claim_info is not None \
                    and self._claim_info():
                info = self._fetch_info(client, generation)
        except HandshakeFailed as failure:
            # _starting_generation stays set until _handle_failure has run: the exit callback of
            # the process the handshake killed must not report its SIGKILL as the cause.
            exit_code = failure.exit_code if failure.exit_code is not None else client.wait(2.0)
            tail = failure.stderr_tail or client.stderr_tail
            memory = launched.memory_cause(exit_code, tail)
            if memory is not None:  # the load itself went over the limit
                failure = HandshakeFailed(memory, ErrorCode.MEMORY_LIMIT_EXCEEDED.value, exit_code=exit_code,
                                          stderr_tail=tail)
            with self._lock:
                if self.first_failure is None:
                    self.first_failure = failure
            self._handle_failure(generation, failure.message, failure.error_code, exit_code, tail,
                                 killed_by_runner=exit_code == -signal.SIGKILL and memory is None)
            return False
        with self._lock:
            self._starting_generation = 0
            if generation != self._generation or self.state is not State.STARTING or run_stop.is_set():
                client.kill()
                return False
            if self._kill_reason is not None:  # recycled while fetching info; its restart is scheduled
                return True
            self.hello = hello
            self.dialect = dialect
            if info is not None:  # a restart keeps what an earlier generation reported
                self.info = info
            self._handoff = ImageHandoff(dialect, shm_dir, segment_dir(self.settings, shm_dir),
                                         spares=self.settings.shm_spares_per_worker)
            if self._image_shape is not None:  # a restart: fault in segments of the images it had
                self._handoff.expect(*self._image_shape)
            self.started_at = time.time()
            self._up_since = time.monotonic()
            self.machine.transition(State.RUNNING, f"ready ({dialect.value}, sdk {hello.get('sdk_version')})",
                                    pid=client.pid)
        if not client.alive:  # exited between readiness and now: on_exit may have been ignored
            self._handle_failure(generation, "worker exited right after it became ready",
                                 ErrorCode.WORKER_CRASHED.value, client.wait(2.0), client.stderr_tail)
            return False
        s = self.settings
        threading.Thread(
            target=run_heartbeat, daemon=True, name=f"pv-heartbeat-{spec.name}-{self.index}",
            args=(client, s.heartbeat_interval_ms / 1000, s.heartbeat_grace_ms / 1000, gen_stop,
                  lambda: generation == self._generation and self.state in SERVING_STATES,
                  None if self.pongs_while_busy else self._call_gate,
                  lambda reason: self._lost_heartbeat(generation, reason))).start()
        return False

    def _not_placed(self, generation: int, shm_dir: Path, exc: OSError) -> bool:
        """A start attempt whose containment could not be set up: a failure like a crash."""
        failure = HandshakeFailed(f"cannot place the worker under its memory limit: {exc}",
                                  ErrorCode.WORKER_UNAVAILABLE.value)
        shutil.rmtree(shm_dir, ignore_errors=True)
        with self._lock:
            if self.first_failure is None:
                self.first_failure = failure
            # The previous generation was cleaned up when it ended: nothing of it is freed again.
            self._client, self._launched, self._handoff, self._shm_dir = None, None, None, None
        self._handle_failure(generation, failure.message, failure.error_code, None, [])
        return False

    def _fetch_info(self, client: AdapterClient, generation: int) -> dict[str, Any] | None:
        """Ask a freshly started worker for get_info() (our adapter proves the load by its hello,
        so the handshake does not). A failure is recorded and logged, not fatal; a hung get_info
        recycles the process like a timed-out call. Raises HandshakeFailed if the process died."""
        timeout = self.settings.info_timeout_ms / 1000
        try:
            frame = client.call({"phase": "info", "step_index": 0, "pid": "", "user_params": {},
                                 "shared_mem_id": "", "image_meta": {}}, timeout)
        except CallTimedOut:
            reason = f"get_info() gave no reply within {timeout * 1000:.0f} ms; worker recycled"
            self._record_info_error(reason, ErrorCode.TIMEOUT.value)
            with self._lock:
                self._kill_reason = {"message": reason, "code": ErrorCode.TIMEOUT.value, "counts": False}
                self._starting_generation = 0
                self._carry_first = self._attempt_is_first
            self._note(f"recycling pid {client.pid}: {reason}")
            client.kill()
            self._handle_failure(generation, reason, ErrorCode.TIMEOUT.value, client.wait(5.0), client.stderr_tail)
            return None
        except WorkerFailure as exc:
            raise HandshakeFailed(f"worker failed while answering get_info(): {exc.message}", exc.error_code,
                                  exit_code=exc.exit_code, stderr_tail=exc.stderr_tail) from exc
        data = frame.get("data")
        info = data.get("info") if isinstance(data, dict) else None
        if frame.get("type") == protocol.RESULT and frame.get("status") == "OK" and isinstance(info, dict):
            self.info_error = None
            return dict(info)
        reason = f"get_info() failed: {short_text(str(frame.get('message') or frame.get('type')))}"
        self._record_info_error(reason, str(frame.get("error_code") or ErrorCode.UNKNOWN_ERROR.value))
        return None

    def _record_info_error(self, reason: str, code: str) -> None:
        self.info_error = {"reason": reason, "code": code, "at": time.time()}
        self._note(reason)

    def _note(self, text: str) -> None:
        """One ``[runner]`` line in the version's worker.log."""
        self.log.write(text, f"[runner] [w{self.index}] ")

    def _lost_heartbeat(self, generation: int, reason: str) -> None:
        if generation == self._generation:
            self.recycle(reason, ErrorCode.HEARTBEAT_LOST)

    def _on_exit(self, generation: int, client: AdapterClient, code: int | None, message: str) -> None:
        with self._lock:
            if generation == self._starting_generation:
                return  # the handshake in progress reports this with the worker's own reason
        failure = client.failure
        self._handle_failure(generation, message, failure.error_code if failure else ErrorCode.WORKER_CRASHED.value,
                             code, client.stderr_tail)

    def _handle_failure(self, generation: int, message: str, code: str, exit_code: int | None,
                        stderr_tail: list[str], killed_by_runner: bool = False) -> None:
        """End a process generation that died or was recycled; restart it or give up (FAILED).

        ``killed_by_runner``: the exit code is the runner's SIGKILL after a failed start, so the
        message (the worker's own reason) is the cause, not the signal.
        """
        with self._lock:
            if generation != self._generation or generation <= self._handled_generation:
                return
            self._handled_generation = generation
            client, handoff, shm_dir, launched = self._client, self._handoff, self._shm_dir, self._launched
            self._gen_stop.set()
            kill_reason = self._kill_reason
            planned_stop = self.state in (State.STOPPING, State.STOPPED) or self._run_stop.is_set()
            if not planned_stop:
                # Mark the worker down before releasing the lock, so no call is dispatched to the
                # dead process while it is being cleaned up.
                self.machine.transition(State.STARTING, f"worker down: {message}", allowed_from=SERVING_STATES)
        if client is not None:
            client.kill()
            if exit_code is None:
                exit_code = client.wait(2.0)
        memory = launched.memory_cause(exit_code, list(stderr_tail)) if launched and not kill_reason else None
        if memory is not None:
            message, code, killed_by_runner = memory, ErrorCode.MEMORY_LIMIT_EXCEEDED.value, False
        self._free(handoff, shm_dir, launched)
        if planned_stop:
            return
        reason = short_text(kill_reason["message"] if kill_reason else message)
        # Recycling after a call's timeout or a FatalError is about that call, not the process.
        counts = kill_reason.get("counts", True) if kill_reason else True
        tail = list(stderr_tail)[-_TAIL:]
        ended = "stopped by the runner" if killed_by_runner else exit_text(exit_code)
        if not kill_reason:
            self._note(f"worker process ended ({ended}): {reason}")
        with self._lock:
            self.last_error = {"reason": reason, "code": kill_reason["code"] if kill_reason else code,
                               "exit_code": exit_code, "stderr_tail": tail, "at": time.time()}
            self.backoff.reset_if_healthy(self._up_since)
            self._up_since = None
            run_stop = self._run_stop
            if counts:
                self.counters["crashes"] += 1
                if self.crash_loop.record():
                    why = (f"crash loop: more than {self.settings.crash_loop_max} failures within "
                           f"{self.settings.crash_loop_window_s:g}s; last: {reason} ({ended})")
                    self.last_error["reason"] = why
                    self.machine.transition(State.FAILED, why, allowed_from=LIVE_STATES)
                    self._note(f"FAILED, no more restarts until an explicit start: {why}")
                    self.machine.emit(SupervisorEvent("failed", self.spec.name, self.spec.version, self.index,
                                                      None, None, State.FAILED, why,
                                                      {"exit_code": exit_code, "stderr_tail": tail}))
                    return
                delay = self.backoff.next_delay()
            else:
                delay = self.backoff.initial_s  # no growing backoff: the process itself was fine
            self.restart_at = time.time() + delay
            self.counters["restarts"] += 1
            attempt = self.counters["restarts"]
            self.machine.transition(State.STARTING, f"restart in {delay:.2f}s: {reason}",
                                    allowed_from=LIVE_STATES)
        self._note(f"restart #{attempt} in {delay:.2f}s (backoff; {self.crash_loop.recent} of at most "
                   f"{self.settings.crash_loop_max} failures counted in the last "
                   f"{self.settings.crash_loop_window_s:g}s)")
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

    def _free(self, handoff: ImageHandoff | None, shm_dir: Path | None, launched: LaunchedWorker | None) -> None:
        if launched is not None:
            launched.end()  # whatever the worker started dies with it (process group, cgroup)
        if handoff is not None:
            try:
                handoff.close()  # frees images and spare segments, stops the handoff's thread
            except OSError as exc:
                self.log.write(f"could not free call images: {exc}", "[runner] ")
        if shm_dir is not None:
            shutil.rmtree(shm_dir, ignore_errors=True)

    def recycle(self, reason: str, code: ErrorCode, counts: bool = True) -> None:
        """Kill the current process on purpose (timeout, fatal error, lost heartbeat); it restarts.

        ``counts`` False (a call's timeout or FatalError) keeps it out of the crash-loop count.
        """
        with self._lock:
            client, generation = self._client, self._generation
            if client is None or self.state not in SERVING_STATES:
                return
            self._kill_reason = {"message": reason, "code": code.value, "counts": counts}
            self.machine.transition(State.STARTING, f"recycling: {reason}", pid=client.pid,
                                    allowed_from=SERVING_STATES)
        self._note(f"recycling pid {client.pid} ({code.value} {code.name.lower()}): {short_text(reason)}")
        self._event("recycle", reason, code=code.value)
        client.kill()
        self._handle_failure(generation, reason, code.value, client.wait(5.0), client.stderr_tail)

    def stop(self, grace_s: float, final_state: State = State.STOPPED, reason: str = "stopped") -> None:
        """Stop for good (until ``start``): shutdown frame, then SIGTERM, then SIGKILL.

        ``final_state`` FAILED is for a start that never produced a ready worker.
        """
        with self._lock:
            self._run_stop.set()
            self._gen_stop.set()
            client, handoff, shm_dir, launched = self._client, self._handoff, self._shm_dir, self._launched
            if self.state in LIVE_STATES:
                self.machine.transition(State.STOPPING, "stop requested", pid=self.pid)
        if client is not None:
            # A start may be between registering its client and spawning the process: give the
            # spawn a moment so the process it makes is shut down here, not left running.
            deadline = time.monotonic() + 2.0
            while client.pid is None and time.monotonic() < deadline:
                time.sleep(0.01)
            client.shutdown(timeout=grace_s, term_timeout=min(grace_s, 3.0))
        self._free(handoff, shm_dir, launched)
        with self._lock:
            # The stopped process's exit callback may still be on its way (its reader thread waits
            # for the last stderr): it must not be taken for a crash of a start that follows.
            self._handled_generation = max(self._handled_generation, self._generation)
            if self.state is not final_state:
                self.machine.transition(final_state, reason, allowed_from=[State.STOPPING, State.STOPPED,
                                                                           State.FAILED, State.INVALID,
                                                                           State.INSTALLED])
            self.busy_request_id = None

    # --- calls ---------------------------------------------------------------------------------

    def reserve_image(self, height: int, width: int, channels: int) -> ImageReservation | None:
        """Shared memory in this worker's segment folder for an image still arriving (see
        ``ImageHandoff.reserve``); None when this worker cannot take one now."""
        with self._lock:
            handoff = self._handoff if self.state in SERVING_STATES else None
            self._image_shape = (height, width, channels)
        return handoff.reserve(height, width, channels, self.index) if handoff is not None else None

    @property
    def reserved_images(self) -> int:
        """Reservations of this worker not taken over by a call yet (the pool spreads them)."""
        handoff = self._handoff
        return handoff.reserved_count if handoff is not None else 0

    def call(self, request: CallRequest, timeout_s: float) -> CallOutcome:
        """Run one call on this worker. The caller (the pool) guarantees one call at a time.

        Never raises for worker-side failures: those come back as ERROR outcomes with a code.
        """
        started = time.monotonic()
        with self._lock:
            client, handoff, dialect = self._client, self._handoff, self.dialect
            ok = client is not None and handoff is not None and self.machine.transition(
                State.EXECUTING, "call", pid=client.pid, allowed_from=[State.RUNNING])
            generation = self._generation
            gen_stop = self._gen_stop
        if not ok or client is None or handoff is None or dialect is None:
            return error_outcome(ErrorCode.WORKER_UNAVAILABLE, f"worker is {self.state.value}, not ready",
                                 dialect, self.pid, 0.0, not_sent=True)
        pid = client.pid
        rid = uuid.uuid4().hex
        self.busy_request_id = rid
        self.counters["calls"] += 1
        gated = not self.pongs_while_busy
        if gated:
            # Wait out a ping in flight (bounded by the heartbeat grace) so it cannot be stuck
            # behind this call in an upstream adapter.
            self._call_gate.acquire()
        try:
            outcome = self._run_call(client, handoff, dialect, request, timeout_s, rid, generation, gen_stop,
                                     started)
        finally:
            if gated:
                self._call_gate.release()
            try:
                handoff.release_all()
            except OSError as exc:
                self.log.write(f"could not free call images: {exc}", "[runner] ")
            self.busy_request_id = None
            self.machine.transition(State.RUNNING, "call done", pid=pid, allowed_from=[State.EXECUTING])
        if outcome.status != "OK":
            self.counters["errors"] += 1
        outcome.worker_pid = pid
        return outcome

    def _run_call(self, client: AdapterClient, handoff: ImageHandoff, dialect: Dialect, request: CallRequest,
                  timeout_s: float, rid: str, generation: int, gen_stop: threading.Event, started: float
                  ) -> CallOutcome:
        def elapsed() -> float:
            return (time.monotonic() - started) * 1000

        launched = self._launched if generation == self._generation else None

        try:
            data = build_call_data(dialect, request, handoff)
        except RunnerError as exc:
            return error_outcome(exc.code, exc.message, dialect, client.pid, elapsed(), **exc.details)
        try:
            # Encode once up front so an unencodable or oversized request is the caller's error,
            # reported before anything reaches the worker.
            protocol.encode_frame(protocol.make_call(rid, data), self.settings.max_frame_bytes)
        except protocol.FrameTooLarge as exc:
            return error_outcome(ErrorCode.FRAME_TOO_LARGE, f"the call is too large to send: {exc}; send "
                                 "images as images, not inside user_params", dialect, client.pid, elapsed())
        except (TypeError, ValueError) as exc:
            return error_outcome(ErrorCode.INVALID_PARAMS, f"the call data is not plain JSON: {exc}",
                                 dialect, client.pid, elapsed())
        try:
            frame = client.call(data, timeout_s, request_id=rid)
        except CallTimedOut:
            self.counters["timeouts"] += 1
            tail = client.stderr_tail[-_TAIL:]
            reason = f"{request.phase} call timed out after {timeout_s * 1000:.0f} ms; worker recycled"
            self.recycle(reason, ErrorCode.TIMEOUT, counts=False)
            return error_outcome(ErrorCode.TIMEOUT, reason, dialect, client.pid, elapsed(),
                                 stderr_tail=tail, exit_code=None, phase=request.phase, timed_out=True)
        except WorkerFailure as exc:
            # The exit handler runs once the worker's stderr is fully read; waiting for it (bounded)
            # makes the tail include the worker's last words.
            gen_stop.wait(2.0)
            exit_code = exc.exit_code if exc.exit_code is not None else client.wait(2.0)
            tail = client.stderr_tail[-_TAIL:]
            kill = self._kill_reason if generation == self._generation else None
            code = kill["code"] if kill else exc.error_code
            message = kill["message"] if kill else exc.message
            memory = launched.memory_cause(exit_code, tail) if launched is not None and not kill else None
            if memory is not None:
                code, message = ErrorCode.MEMORY_LIMIT_EXCEEDED.value, memory
            self._handle_failure(generation, message, code, exit_code, tail)
            text = short_text(message)
            text = text if f"code {exit_code}" in text else f"{text} (exit code {exit_code})"
            quoted = short_text(" | ".join(tail[-3:])) or "(none)"
            return error_outcome(code, f"{text}; worker restarts; last stderr lines: {quoted}",
                                 dialect, client.pid, elapsed(), exit_code=exit_code, stderr_tail=tail)
        outcome = outcome_from_frame(frame, dialect, client.pid, elapsed())
        if launched is not None and launched.placement.memory_error_reply(outcome.details):
            # RLIMIT_DATA made an allocation fail: the worker is over its limit, replace it.
            reason = memory_message(launched.placement)
            self.recycle(reason, ErrorCode.MEMORY_LIMIT_EXCEEDED)
            return error_outcome(ErrorCode.MEMORY_LIMIT_EXCEEDED, f"{reason}; worker restarts", dialect,
                                 client.pid, elapsed(), recycled=True, algorithm_message=outcome.message)
        if outcome.details.get("fatal") is True:
            self.recycle(f"algorithm raised a fatal error: {outcome.message}", ErrorCode.WORKER_CRASHED,
                         counts=False)
            outcome.details["recycled"] = True
        return outcome


__all__ = ["Worker"]

