"""The call path: one ``execute`` resolves its pid once (``RouteTable.enter``), is checked against the
dialect of the version it resolved to, runs on that version's pool, is normalised and recorded.

``execute`` raises RunnerError only for routing failures (unbound pid, bad request, worker
unavailable or queue full); algorithm and worker failures come back as an ERROR ExecutionResult.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from procvision_algorithm_sdk.errors import ErrorCode
from runner.config import Settings
from runner.errors import RunnerError
from runner.store.registry import Registry
from runner.supervision.dialects import CallRequest, Dialect, known_strategy
from runner.supervision.spec import CallOutcome

from .protocols import CallRecorder, SupervisorLike
from .results import normalise
from .table import RouteTable, VersionKey


@dataclass
class ExecutionResult:
    """The answer to one ``execute``: a checked result plus who served it."""

    status: str  # "OK" | "ERROR"
    message: str
    data: dict[str, Any]
    error_code: str | None
    error_name: str | None
    served_by: dict[str, Any]  # {name, version, worker_pid, dialect}
    latency_ms: float
    session_id: str | None
    phase: str
    step_index: int
    retries: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    #: Where ``latency_ms`` went: ``queue`` (waiting for a worker), ``worker`` (round trips),
    #: ``checks`` (normalising and schema-checking the reply). The API reports them in Server-Timing.
    phases_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # Shallow: ``jsonable`` builds fresh containers from it anyway; asdict's deep copy of the
        # worker's data cost more than the rest of the conversion on every call.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def version_label(key: VersionKey) -> str:
    return f"{key[0]} {key[1]}"


class CallEntry:
    """Where calls enter routing: the pid -> version table, the pools, the metrics recorder."""

    def __init__(self, settings: Settings, registry: Registry, supervisor: SupervisorLike, table: RouteTable,
                 recorder: CallRecorder | None) -> None:
        self._settings = settings
        self._registry = registry
        self._supervisor = supervisor
        self._table = table
        self._recorder = recorder

    def execute(self, pid: str, request: CallRequest, timeout_s: float | None = None) -> ExecutionResult:
        """Run ``request`` on the version bound to ``pid`` and return the checked result.

        RunnerError 2009 when ``pid`` is unbound (the message names 1001 invalid_pid); the pool's
        RunnerError for a full queue or an unavailable worker. Everything the algorithm or worker
        does wrong is an ERROR result, never an exception.
        """
        if not isinstance(pid, str) or not pid:
            raise RunnerError(ErrorCode.INVALID_PID, f"pid must be a non-empty string, got {pid!r}")
        if request.pid != pid:
            request = dataclasses.replace(request, pid=pid)
        started = time.monotonic()
        outcome: CallOutcome | None = None
        key: VersionKey | None = None
        for attempt in range(2):
            key = self._table.enter(pid, request.session_id)  # the one place the pid is resolved
            try:
                self._check_request(key, request)
                try:
                    outcome = self._call(key, pid, request, timeout_s)
                except RunnerError as exc:
                    if not (attempt == 0 and exc.code == ErrorCode.WORKER_UNAVAILABLE.value
                            and self._table.moved(pid, key)):
                        self._record(key, exc.name, time.monotonic() - started)
                        raise
            finally:
                self._table.leave(key, pid, request.session_id, request.end_session)
            if outcome is not None and not (attempt == 0 and outcome.error_code == ErrorCode.WORKER_UNAVAILABLE.value
                                            and self._table.moved(pid, key)):
                break
            # The version this call resolved to was retired between resolving and calling; the
            # pid's current version takes the call instead.
            self._table.drop_pin(pid, request.session_id, key)
            outcome = None
        assert outcome is not None and key is not None
        checks_started = time.monotonic()
        checked = normalise(request.phase, outcome, self._settings.max_defects)
        checks_ms = (time.monotonic() - checks_started) * 1000
        details = dict(outcome.details)
        if checked.issues:
            details["issues"] = checked.issues
        result = ExecutionResult(
            status=checked.status, message=checked.message, data=checked.data, error_code=checked.error_code,
            error_name=checked.error_name,
            served_by={"name": key[0], "version": key[1], "worker_pid": outcome.worker_pid,
                       "dialect": outcome.dialect.value if isinstance(outcome.dialect, Dialect)
                       else str(outcome.dialect)},
            latency_ms=(time.monotonic() - started) * 1000, session_id=request.session_id,
            phase=request.phase, step_index=request.step_index, retries=outcome.retries, details=details,
            phases_ms={"queue": outcome.queue_ms, "worker": outcome.worker_ms, "checks": checks_ms})
        status = result.status if result.status == "OK" or not result.error_name else result.error_name
        self._record(key, status, result.latency_ms / 1000.0)
        return result

    def _record(self, key: VersionKey, status: str, latency_s: float | None) -> None:
        if self._recorder is not None:
            self._recorder.record_call(key[0], key[1], status, latency_s)

    def _check_request(self, key: VersionKey, request: CallRequest) -> None:
        """Refuse up front what the workers of ``key`` cannot run (by their dialect's rules)."""
        pool = self._supervisor.get(*key)
        live = pool.dialect if pool is not None else None
        # Before its first worker said hello, the registry's record tells (none for a version
        # installed without the smoke test); the registry is read only then, off the hot path.
        stored = self._registry.get(*key) if live is None else None
        recorded = stored.dialect if stored is not None else None
        strategy = known_strategy(live, recorded)
        if strategy is not None:
            strategy.check_request(key[0], key[1], request)

    def _call(self, key: VersionKey, pid: str, request: CallRequest, timeout_s: float | None) -> CallOutcome:
        pool = self._supervisor.get(*key)
        if pool is None:
            raise RunnerError(ErrorCode.WORKER_UNAVAILABLE,
                              f"{version_label(key)} serves pid {pid!r} but has no running worker; "
                              "start it (or check its logs for why it stopped)",
                              name=key[0], version=key[1], pid=pid)
        outcome: CallOutcome = pool.call(request, timeout_s)
        return outcome
