"""Long-running operations (installs) run one at a time on a background thread.

``POST /algorithms/install`` answers 202 with an operation; clients poll ``GET /operations/{id}``.
An ``Idempotency-Key`` maps to one operation, so a retried request never installs twice.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runner.errors import PackageErrorCode, RunnerError
from runner.store.journal import UNFINISHED, OperationsJournal
from runner.store.space import as_runner_error

from .problems import problem_from_error

_log = logging.getLogger("runner.operations")

#: A unit of work: gets a progress callback (stage name), returns the JSON result.
Work = Callable[[Callable[[str], None]], dict[str, Any]]


@dataclass
class Operation:
    """One submitted operation and what is known about it so far."""

    id: str
    kind: str
    state: str = "pending"  # pending | running | succeeded | failed
    stage: str | None = None
    stages: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    idempotency_key: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    #: Digest of what the idempotency key guards (journal only, not shown by the API).
    fingerprint: str = ""
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Operation:
        """An operation read back from the journal (its ``done`` event set when it has finished)."""
        known = {f for f in cls.__dataclass_fields__ if f != "done"}
        op = cls(**{k: v for k, v in data.items() if k in known})
        if op.state not in UNFINISHED:
            op.done.set()
        return op

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "state": self.state, "stage": self.stage,
                "stages": list(self.stages), "created_at": self.created_at, "started_at": self.started_at,
                "finished_at": self.finished_at, "result": self.result, "error": self.error,
                "idempotency_key": self.idempotency_key, "request": dict(self.request)}


@dataclass
class _Job:
    op: Operation
    work: Work
    cleanup: Callable[[], None] | None


class OperationManager:
    """Runs submitted work in order on one worker thread and keeps the last ``keep`` operations.

    With a ``journal`` every change of an operation is saved under the root, and operations the
    journal shows unfinished at construction (the daemon died while they ran) are marked failed
    "interrupted by restart"; their ids and idempotency keys stay known.
    """

    def __init__(self, keep: int = 500,
                 on_finished: Callable[[Operation], None] | None = None,
                 journal: OperationsJournal | None = None) -> None:
        # What the journal cannot keep would be gone after a restart anyway: keep as many in memory.
        self._keep = min(keep, journal.keep) if journal is not None else keep
        self._on_finished = on_finished
        self._journal = journal
        self._persist_lock = threading.Lock()
        self._root = journal.path.parent if journal is not None else None
        self._ops: collections.OrderedDict[str, Operation] = collections.OrderedDict()
        self._by_key: dict[str, tuple[str, str]] = {}  # key -> (fingerprint, op id)
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._accepting = True
        if journal is not None:
            self._restore(journal)
        self._thread = threading.Thread(target=self._run, name="operations", daemon=True)
        self._thread.start()

    def _restore(self, journal: OperationsJournal) -> None:
        now = time.time()
        for entry in journal.load():
            op = Operation.from_dict(entry)
            if op.state in UNFINISHED:
                where = f" at stage {op.stage!r}" if op.stage else ""
                error = RunnerError(PackageErrorCode.INSTALL_FAILED,
                                    f"interrupted by restart: the daemon stopped while this {op.kind} was "
                                    f"{op.state}{where}; submit it again (one that had reached "
                                    "'publishing' may have completed: see `procvision-runner list` or "
                                    "GET /algorithms)",
                                    interrupted=True, stage=op.stage)
                op.state, op.error, op.finished_at = "failed", problem_from_error(error), now
                op.done.set()
                _log.warning("operation %s (%s) was interrupted by a restart; marked failed", op.id, op.kind)
            self._ops[op.id] = op
            if op.idempotency_key is not None:
                self._by_key[op.idempotency_key] = (op.fingerprint, op.id)
        self._trim()
        self._persist(strict=False)

    def _persist(self, strict: bool) -> None:
        """Save every operation to the journal. ``strict``: a failed write raises (disk full: 2017);
        otherwise it is logged and the next change tries again."""
        if self._journal is None:
            return
        # One writer at a time, snapshot included: an older snapshot never overwrites a newer one.
        with self._persist_lock:
            with self._lock:
                snapshot = [{**op.to_dict(), "fingerprint": op.fingerprint} for op in self._ops.values()]
            try:
                self._journal.save(snapshot)
            except OSError as exc:
                if strict:
                    raise
                _log.warning("could not save the operations journal %s: %s", self._journal.path, exc)

    def submit(self, kind: str, work: Work, *, idempotency_key: str | None = None,
               fingerprint: str = "", request: dict[str, Any] | None = None,
               cleanup: Callable[[], None] | None = None) -> tuple[Operation, bool]:
        """Queue ``work``; returns (operation, created).

        With an ``idempotency_key`` already seen, returns the earlier operation (created=False) and
        runs ``cleanup`` right away; the same key with a different ``fingerprint`` is refused.
        """
        with self._lock:
            if idempotency_key is not None and idempotency_key in self._by_key:
                known_fp, op_id = self._by_key[idempotency_key]
                existing = self._ops.get(op_id)
                if existing is not None:
                    if cleanup is not None:
                        cleanup()
                    if known_fp != fingerprint:
                        raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                                          "this Idempotency-Key was used for a different request; "
                                          "use a new key for a new request",
                                          idempotency_key=idempotency_key, operation_id=op_id)
                    return existing, False
            if not self._accepting:
                if cleanup is not None:
                    cleanup()
                raise RunnerError(PackageErrorCode.BUSY, "the runner is shutting down; retry after restart")
            op = Operation(id=uuid.uuid4().hex, kind=kind, idempotency_key=idempotency_key,
                           request=dict(request or {}), fingerprint=fingerprint)
            self._ops[op.id] = op
            if idempotency_key is not None:
                self._by_key[idempotency_key] = (fingerprint, op.id)
            self._trim()
        try:
            self._persist(strict=True)
        except OSError:
            # Not recorded, so not accepted: the caller gets the error (2017 when the disk is full).
            with self._lock:
                self._ops.pop(op.id, None)
                if idempotency_key is not None:
                    self._by_key.pop(idempotency_key, None)
            if cleanup is not None:
                cleanup()
            raise
        self._queue.put(_Job(op, work, cleanup))
        return op, True

    def get(self, op_id: str) -> Operation:
        """The operation with this id, or a 2009 error."""
        with self._lock:
            op = self._ops.get(op_id)
        if op is None:
            raise RunnerError(PackageErrorCode.NOT_FOUND, f"no operation with id {op_id!r} "
                              f"(the last {self._keep} operations are kept)",
                              operation_id=op_id)
        return op

    def list(self, kind: str | None = None, state: str | None = None) -> list[Operation]:
        """Known operations, oldest first, optionally of one kind and/or in one state."""
        with self._lock:
            return [op for op in self._ops.values()
                    if (kind is None or op.kind == kind) and (state is None or op.state == state)]

    def pending_count(self) -> int:
        with self._lock:
            return sum(1 for op in self._ops.values() if op.state in ("pending", "running"))

    def close(self, timeout_s: float) -> bool:
        """Stop taking work, fail what is still queued, wait up to ``timeout_s`` for the running one.

        Returns True when the worker thread finished.
        """
        with self._lock:
            self._accepting = False
        drained: list[_Job] = []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                drained.append(job)
        for job in drained:
            self._finish(job, None, RunnerError(PackageErrorCode.BUSY,
                                                "the runner shut down before this operation started; submit it again"))
        self._queue.put(None)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _trim(self) -> None:
        while len(self._ops) > self._keep:
            oldest_id, oldest = next(iter(self._ops.items()))
            if oldest.state in ("pending", "running"):
                break
            del self._ops[oldest_id]
            if oldest.idempotency_key is not None:
                self._by_key.pop(oldest.idempotency_key, None)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            op = job.op
            op.state, op.started_at = "running", time.time()
            self._persist(strict=False)

            def progress(stage: str, op: Operation = op) -> None:
                op.stage = stage
                if not op.stages or op.stages[-1] != stage:
                    op.stages.append(stage)
                    self._persist(strict=False)

            try:
                result = job.work(progress)
            except RunnerError as err:
                self._finish(job, None, err)
            except Exception as exc:  # noqa: BLE001 - any failure must end the operation, not the thread
                error = as_runner_error(exc, self._root or "the runtime root", op.kind)
                if error.code != PackageErrorCode.DISK_FULL.value:
                    _log.error("operation %s (%s) failed unexpectedly", op.id, op.kind, exc_info=exc)
                self._finish(job, None, error)
            else:
                self._finish(job, result, None)

    def _finish(self, job: _Job, result: dict[str, Any] | None, error: RunnerError | None) -> None:
        op = job.op
        if job.cleanup is not None:
            try:
                job.cleanup()
            except OSError as exc:
                _log.warning("cleanup after operation %s failed: %s", op.id, exc)
        op.finished_at = time.time()
        if error is None:
            op.result, op.state = result, "succeeded"
        else:
            op.error, op.state = problem_from_error(error), "failed"
        self._persist(strict=False)
        op.done.set()
        if self._on_finished is not None:
            self._on_finished(op)


def fingerprint_of(*parts: str) -> str:
    """A short stable digest of the request parts an idempotency key guards."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()

