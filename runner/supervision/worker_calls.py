"""Running one call on a worker slot's current process, with its deadline and failure handling."""

from __future__ import annotations

import time
import uuid

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.client import CallTimedOut, WorkerFailure
from procvision_algorithm_sdk.errors import ErrorCode
from runner.errors import RunnerError

from .dialects import CallRequest, Dialect, ImageHandoff, build_call_data
from .dialects.reservation import ImageReservation
from .generation import Generation
from .image_size import ImageShape, shape_of
from .launcher import ProcessClient
from .outcomes import error_outcome, outcome_from_frame
from .spec import CallOutcome
from .states import SERVING_STATES, State
from .worker_base import WorkerBase
from .worker_text import TAIL_LINES, short_text


class WorkerCalls(WorkerBase):
    """The call path of a worker slot."""

    def reserve_image(self, height: int, width: int, channels: int) -> ImageReservation | None:
        """Shared memory in this worker's segment folder for an image still arriving (see
        ``ImageHandoff.reserve``); None when this worker cannot take one now."""
        with self._lock:
            gen = self._gen
            handoff = gen.handoff if gen is not None and self.state in SERVING_STATES else None
            self._note_image((height, width, channels))
        return handoff.reserve(height, width, channels, self.index) if handoff is not None else None

    def _note_image(self, shape: ImageShape) -> None:
        self._image_shape = shape
        self.image_size.note(shape)

    @property
    def reserved_images(self) -> int:
        """Reservations of this worker not taken over by a call yet (the pool spreads them)."""
        handoff = self.handoff
        return handoff.reserved_count if handoff is not None else 0

    def call(self, request: CallRequest, timeout_s: float) -> CallOutcome:
        """Run one call on this worker. The caller (the pool) guarantees one call at a time.

        Never raises for worker-side failures: those come back as ERROR outcomes with a code.
        """
        started = time.monotonic()
        with self._lock:
            gen, dialect = self._gen, self.dialect
            client = gen.client if gen is not None else None
            handoff = gen.handoff if gen is not None else None
            ready = self.state is State.RUNNING and dialect is not None
            if ready and client is not None and handoff is not None:
                self.machine.transition(State.EXECUTING, "call", pid=client.pid)
        if not ready or gen is None or client is None or handoff is None or dialect is None:
            return error_outcome(ErrorCode.WORKER_UNAVAILABLE, f"worker is {self.state.value}, not ready",
                                 dialect, self.pid, 0.0, not_sent=True)
        if request.image is not None and request.image.array is not None:
            self._note_image(shape_of(request.image.array.shape))
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
            outcome = self._run_call(client, handoff, dialect, request, timeout_s, rid, gen, started)
        finally:
            if gated:
                self._call_gate.release()
            try:
                handoff.release_all()
            except OSError as exc:
                self.log.write(f"could not free call images: {exc}", "[runner] ")
            self.busy_request_id = None
            with self._lock:
                # The process may have gone down during the call (the state says what follows).
                if self.state is State.EXECUTING:
                    self.machine.transition(State.RUNNING, "call done", pid=pid)
        if outcome.status != "OK":
            self.counters["errors"] += 1
        outcome.worker_pid = pid
        return outcome

    def _run_call(self, client: ProcessClient, handoff: ImageHandoff, dialect: Dialect, request: CallRequest,
                  timeout_s: float, rid: str, gen: Generation, started: float) -> CallOutcome:
        def elapsed() -> float:
            return (time.monotonic() - started) * 1000

        launched = gen.launched if gen is self._gen else None

        try:
            data = build_call_data(dialect, request, handoff)
        except RunnerError as exc:
            return error_outcome(exc.code, exc.message, dialect, client.pid, elapsed(), **exc.details)
        try:
            # Encoded up front so an unencodable or oversized request is the caller's error, reported
            # before anything reaches the worker; the client sends these very bytes (not encoded twice).
            encoded = protocol.encode_frame(protocol.make_call(rid, data), self.settings.max_frame_bytes)
        except protocol.FrameTooLarge as exc:
            return error_outcome(ErrorCode.FRAME_TOO_LARGE, f"the call is too large to send: {exc}; send "
                                 "images as images, not inside user_params", dialect, client.pid, elapsed())
        except (TypeError, ValueError) as exc:
            return error_outcome(ErrorCode.INVALID_PARAMS, f"the call data is not plain JSON: {exc}",
                                 dialect, client.pid, elapsed())
        try:
            frame = client.call(data, timeout_s, request_id=rid, encoded=encoded)
        except CallTimedOut:
            self.counters["timeouts"] += 1
            tail = client.stderr_tail[-TAIL_LINES:]
            reason = f"{request.phase} call timed out after {timeout_s * 1000:.0f} ms; worker recycled"
            self.recycle(reason, ErrorCode.TIMEOUT, counts=False)
            return error_outcome(ErrorCode.TIMEOUT, reason, dialect, client.pid, elapsed(),
                                 stderr_tail=tail, exit_code=None, phase=request.phase, timed_out=True)
        except WorkerFailure as exc:
            # The exit handler runs once the worker's stderr is fully read; waiting for it (bounded)
            # makes the tail include the worker's last words.
            gen.ended.wait(2.0)
            exit_code = exc.exit_code if exc.exit_code is not None else client.wait(2.0)
            tail = client.stderr_tail[-TAIL_LINES:]
            kill = gen.kill_reason if gen is self._gen else None
            code = kill.code if kill else exc.error_code
            message = kill.message if kill else exc.message
            memory = launched.memory_cause(exit_code, tail) if launched is not None and not kill else None
            if memory is not None:
                code, message = ErrorCode.MEMORY_LIMIT_EXCEEDED.value, memory
            self._handle_failure(gen, message, code, exit_code, tail)
            text = short_text(message)
            text = text if f"code {exit_code}" in text else f"{text} (exit code {exit_code})"
            quoted = short_text(" | ".join(tail[-3:])) or "(none)"
            return error_outcome(code, f"{text}; worker restarts; last stderr lines: {quoted}",
                                 dialect, client.pid, elapsed(), exit_code=exit_code, stderr_tail=tail)
        outcome = outcome_from_frame(frame, dialect, client.pid, elapsed())
        memory_reply = launched.memory_error_reply(outcome.details) if launched is not None else None
        if memory_reply is not None:
            # RLIMIT_DATA made an allocation fail: the worker is over its limit, replace it.
            self.recycle(memory_reply, ErrorCode.MEMORY_LIMIT_EXCEEDED)
            return error_outcome(ErrorCode.MEMORY_LIMIT_EXCEEDED, f"{memory_reply}; worker restarts", dialect,
                                 client.pid, elapsed(), recycled=True, algorithm_message=outcome.message)
        if outcome.fatal:
            self.recycle(f"algorithm raised a fatal error: {outcome.message}", ErrorCode.WORKER_CRASHED,
                         counts=False)
            outcome.details["recycled"] = True
        return outcome
