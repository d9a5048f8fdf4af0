"""Bringing one process generation of a worker slot up: launch, handshake, get_info, heartbeat."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.client import CallTimedOut, HandshakeFailed, WorkerFailure
from procvision_algorithm_sdk.errors import ErrorCode

from .dialects import ImageHandoff, strategy_for
from .generation import Generation, KillReason
from .heartbeat import run_heartbeat
from .launcher import Handshake, ProcessClient
from .sandbox import segment_dir
from .states import SERVING_STATES, State
from .worker_base import WorkerBase
from .worker_text import short_text


class WorkerStartup(WorkerBase):
    """The start attempts of a worker slot; each makes one ``Generation``."""

    def _spawn(self, run_stop: threading.Event, first: bool) -> None:
        with self._lock:
            self._attempt_is_first = first
        carried = False
        try:
            carried = self._spawn_once(run_stop)
        finally:
            if first and not carried:
                self.first_attempt_done.set()

    def _begin_generation(self, run_stop: threading.Event) -> Generation | None:
        """The new generation of this attempt, in STARTING; None if the slot was stopped meanwhile."""
        with self._lock:
            if run_stop.is_set() or self.state not in (State.STARTING, State.BACKOFF):
                return None
            if self.state is State.BACKOFF:
                self.machine.transition(State.STARTING, "restarting after backoff")
            self._gen_count += 1
            gen = Generation(self._gen_count)
            self._gen = gen
            self.restart_at = None
            return gen

    def _spawn_once(self, run_stop: threading.Event) -> bool:
        """One start attempt. True if it was recycled for a per-call reason (a hung get_info) and
        its restart carries on the same attempt (so a waiting start does not give up on it)."""
        gen = self._begin_generation(run_stop)
        if gen is None:
            return False
        spec = self.spec
        if not Path(spec.python).is_file() or not Path(spec.package_dir).is_dir():
            reason = (f"cannot start: interpreter {spec.python} or package folder {spec.package_dir} is missing; "
                      "reinstall the version")
            with self._lock:
                gen.handled = True
                gen.ended.set()
                if run_stop.is_set():  # stop() owns the state now
                    return False
                self.last_error = {"reason": reason, "exit_code": None, "stderr_tail": [], "at": time.time()}
                self.first_failure = WorkerFailure(reason, ErrorCode.WORKER_UNAVAILABLE.value)
                self.machine.transition(State.INVALID, reason)
            return False
        shm_dir = self.shm_root / f"w{self.index}-g{gen.number}"
        shm_dir.mkdir(parents=True, exist_ok=True)
        prefix = f"[w{self.index}] "
        try:
            launched = self.launcher.launch(spec, self.index, shm_dir, lambda line: self.log.write(line, prefix),
                                            lambda c, code, message: self._on_exit(gen, c, code, message))
        except OSError as exc:  # its memory cgroup could not be made: never run it unlimited
            return self._not_placed(gen, shm_dir, exc)
        client = launched.client
        with self._lock:
            if run_stop.is_set():  # stop() ran since the check above: it must not miss this process
                launched.end()
                shutil.rmtree(shm_dir, ignore_errors=True)
                return False
            gen.launched = launched
            gen.shm_dir = shm_dir
            gen.handshaking = True
        try:
            try:
                ready = self.launcher.handshake(launched)
            except OSError as exc:  # the interpreter could not be executed at all
                client.kill()
                raise HandshakeFailed(f"cannot start the worker process: {exc}", exit_code=None) from exc
            info = ready.info
            if info is None and strategy_for(ready.dialect).fetches_info_after_start \
                    and self._claim_info is not None and self._claim_info():
                info = self._fetch_info(client, gen)
        except HandshakeFailed as failure:
            # gen.handshaking stays set: the exit callback of the process the handshake killed
            # must not report its SIGKILL as the cause.
            exit_code = failure.exit_code if failure.exit_code is not None else client.wait(2.0)
            tail = failure.stderr_tail or client.stderr_tail
            memory = launched.memory_cause(exit_code, tail)
            if memory is not None:  # the load itself went over the limit
                failure = HandshakeFailed(memory, ErrorCode.MEMORY_LIMIT_EXCEEDED.value, exit_code=exit_code,
                                          stderr_tail=tail)
            with self._lock:
                if self.first_failure is None:
                    self.first_failure = failure
            self._handle_failure(gen, failure.message, failure.error_code, exit_code, tail,
                                 killed_by_runner=exit_code == -signal.SIGKILL and memory is None)
            return False
        if not self._become_ready(gen, ready, info, client, run_stop):
            return gen.kill_reason is not None  # recycled while fetching info: its restart carries on
        if not client.alive:  # exited between readiness and now: on_exit may have been ignored
            self._handle_failure(gen, "worker exited right after it became ready",
                                 ErrorCode.WORKER_CRASHED.value, client.wait(2.0), client.stderr_tail)
            return False
        s = self.settings
        threading.Thread(
            target=run_heartbeat, daemon=True, name=f"pv-heartbeat-{spec.name}-{self.index}",
            args=(client, s.heartbeat_interval_ms / 1000, s.heartbeat_grace_ms / 1000, gen.ended,
                  lambda: gen is self._gen and self.state in SERVING_STATES,
                  None if self.pongs_while_busy else self._call_gate,
                  lambda reason: self._lost_heartbeat(gen, reason))).start()
        return False

    def _become_ready(self, gen: Generation, ready: Handshake, info: dict[str, Any] | None,
                      client: ProcessClient, run_stop: threading.Event) -> bool:
        """Move a generation that passed its handshake to RUNNING; False if it must not serve."""
        with self._lock:
            gen.handshaking = False
            if gen.kill_reason is not None:  # recycled while fetching info; its restart is scheduled
                return False
            if gen is not self._gen or self.state is not State.STARTING or run_stop.is_set():
                client.kill()
                return False
            self.hello = ready.hello
            self.dialect = ready.dialect
            if info is not None:  # a restart keeps what an earlier generation reported
                self.info = info
            assert gen.shm_dir is not None  # set with the launch, before the handshake
            gen.handoff = ImageHandoff(ready.dialect, gen.shm_dir, segment_dir(self.settings, gen.shm_dir),
                                       spares=self.settings.shm_spares_per_worker)
            # Fault in segments of the images this slot had (a restart), else of what the station's
            # calls carry (a new version after a switch, an added worker): its first calls find them ready.
            expected = self._image_shape or self.image_size.shape
            if expected is not None:
                gen.handoff.expect(*expected)
            self.started_at = time.time()
            gen.up_since = self.restart_policy.clock()
            self.machine.transition(State.RUNNING, f"ready ({ready.dialect.value}, sdk "
                                                   f"{ready.hello.get('sdk_version')})", pid=client.pid)
            return True

    def _not_placed(self, gen: Generation, shm_dir: Path, exc: OSError) -> bool:
        """A start attempt whose containment could not be set up: a failure like a crash."""
        failure = HandshakeFailed(f"cannot place the worker under its memory limit: {exc}",
                                  ErrorCode.WORKER_UNAVAILABLE.value)
        shutil.rmtree(shm_dir, ignore_errors=True)
        with self._lock:
            if self.first_failure is None:
                self.first_failure = failure
        self._handle_failure(gen, failure.message, failure.error_code, None, [])
        return False

    def _fetch_info(self, client: ProcessClient, gen: Generation) -> dict[str, Any] | None:
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
                gen.kill_reason = KillReason(reason, ErrorCode.TIMEOUT.value, counts=False)
                gen.handshaking = False
                self._carry_first = self._attempt_is_first
            self._note(f"recycling pid {client.pid}: {reason}")
            client.kill()
            self._handle_failure(gen, reason, ErrorCode.TIMEOUT.value, client.wait(5.0), client.stderr_tail)
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

    def _lost_heartbeat(self, gen: Generation, reason: str) -> None:
        if gen is self._gen:
            self.recycle(reason, ErrorCode.HEARTBEAT_LOST)

    def _on_exit(self, gen: Generation, client: ProcessClient, code: int | None, message: str) -> None:
        with self._lock:
            if gen.handshaking:
                return  # the handshake in progress reports this with the worker's own reason
        failure = client.failure
        self._handle_failure(gen, message, failure.error_code if failure else ErrorCode.WORKER_CRASHED.value,
                             code, client.stderr_tail)
