"""Routes calls for a product id (pid) to the worker pool of the version bound to it, and moves pids
between versions without dropping a call.

Management operations (activate, switch, rollback, deactivate, uninstall, start/stop/restart) are
serialised by one re-entrant lock; they may block for seconds (worker start, drain). The pid ->
version table, the calls in flight and the session pins are a ``RouteTable`` (table.py, where its
concurrency model is described); which version a rollback returns to and which versions are pruned
is decided in retention.py. A call resolves its pid once (``RouteTable.enter``), and the request is
checked against the dialect of the version it resolved to.

``execute`` raises RunnerError only for routing failures (unbound pid, bad request, worker
unavailable or queue full); algorithm and worker failures come back as an ERROR ExecutionResult.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from procvision_algorithm_sdk.errors import ErrorCode
from runner.config import Settings
from runner.errors import PackageErrorCode, RunnerError
from runner.store.layout import RootLayout
from runner.store.registry import INVALID, Record, Registry
from runner.supervision.dialects import CallRequest, Dialect, known_strategy
from runner.supervision.dialects.reservation import ImageReservation
from runner.supervision.spec import CallOutcome, WorkerSpec
from runner.supervision.states import SERVING_STATES, State

from .activation import ActivationStore, Binding, check_pid
from .results import normalise
from .retention import prune_candidates, rollback_target
from .table import SESSION_PIN_CAPACITY, RouteTable, VersionKey

_log = logging.getLogger(__name__)

__all__ = ["ExecutionResult", "Router", "PoolLike", "SupervisorLike", "InstallerLike", "CallRecorder",
           "SESSION_PIN_CAPACITY", "VersionKey"]


class PoolLike(Protocol):
    """What the router (and the service) use of the supervisor's ``VersionPool``."""

    @property
    def spec(self) -> WorkerSpec: ...

    @property
    def state(self) -> State: ...

    @property
    def dialect(self) -> Dialect | None: ...

    @property
    def last_error(self) -> dict[str, Any] | None: ...

    def call(self, request: CallRequest, timeout_s: float | None = None) -> CallOutcome: ...

    def reserve_image(self, height: int, width: int, channels: int,
                      session_id: str | None = None) -> ImageReservation | None: ...

    def in_flight(self) -> int: ...

    def status(self) -> dict[str, Any]: ...

    def ready_budget_s(self) -> float: ...

    def wait_first_attempt(self, timeout_s: float) -> bool: ...


class SupervisorLike(Protocol):
    """What the router uses of ``runner.supervision.supervisor.Supervisor``."""

    def start(self, spec: WorkerSpec, wait_ready: bool = True) -> PoolLike: ...

    def get(self, name: str, version: str) -> PoolLike | None: ...

    def stop(self, name: str, version: str, drain_timeout_s: float) -> Any: ...

    def restart(self, name: str, version: str) -> Any: ...


class InstallerLike(Protocol):
    """What the router uses of ``runner.package.installer.Installer``."""

    def remove(self, name: str, version: str) -> Any: ...


class CallRecorder(Protocol):
    """Where the router reports each execute call (the service's metrics)."""

    def record_call(self, name: str, version: str, status: str, latency_s: float | None) -> None: ...


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


def _version_label(key: VersionKey) -> str:
    return f"{key[0]} {key[1]}"


class Router:
    """pid -> version bindings, version switching, and call routing. Thread-safe.

    ``session_grace_s``: how long a retiring version waits for an idle session to come back (a
    detection flow's next step) before it is stopped. ``drain_timeout_s``: the longest a retiring
    version waits in total; default: the longest call deadline times the retries, plus the
    shutdown grace.
    """

    def __init__(self, settings: Settings, layout: RootLayout, registry: Registry, supervisor: SupervisorLike,
                 installer: InstallerLike, *, session_grace_s: float = 2.0,
                 drain_timeout_s: float | None = None, recorder: CallRecorder | None = None,
                 admit: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.settings = settings
        self.layout = layout
        self.registry = registry
        self.supervisor = supervisor
        self.installer = installer
        self.store = ActivationStore(layout)
        # Refuses a version that may not serve (the trust gate: its signer is no longer trusted);
        # activate and switch are checked by the service, rollback's targets only exist here.
        self._admit = admit
        longest_call_s = max(settings.execute_timeout_ms, settings.pre_execute_timeout_ms) / 1000
        self.table = RouteTable(session_grace_s, drain_timeout_s if drain_timeout_s is not None else (
            longest_call_s * (settings.max_retries + 1) + settings.shutdown_grace_s))
        self.recorder = recorder
        self._ops = threading.RLock()
        self.resume_errors: dict[str, dict[str, Any]] = {}

    @property
    def session_grace_s(self) -> float:
        """How long a retiring version waits for an idle session to come back (the table's rule)."""
        return self.table.session_grace_s

    @session_grace_s.setter
    def session_grace_s(self, value: float) -> None:
        self.table.session_grace_s = value

    @property
    def drain_timeout_s(self) -> float:
        """The longest a retiring version waits in total."""
        return self.table.drain_timeout_s

    @drain_timeout_s.setter
    def drain_timeout_s(self, value: float) -> None:
        self.table.drain_timeout_s = value

    # --- reading -------------------------------------------------------------------------------

    def active(self) -> dict[str, Binding]:
        """The current bindings, by pid."""
        return self.table.bindings()

    def in_flight(self, name: str, version: str) -> int:
        """Calls the router has sent (or is sending) to ``name``/``version`` right now."""
        return self.table.in_flight((name, version))

    def history(self, pid: str) -> list[Binding]:
        """Past and current bindings of ``pid``, oldest first."""
        return self.store.history(check_pid(pid))

    # --- lifecycle -----------------------------------------------------------------------------

    def resume(self) -> None:
        """At daemon start: load the bindings from ``active/`` and start the workers they need.

        Pools start without giving up on a first failure: a worker that fails keeps restarting
        with backoff (until the crash-loop limit), so a cause that goes away (a camera, a licence
        server, a mount not up yet at boot) heals by itself. Every version stays bound. Resume
        waits, bounded and for all versions at once, for each one's first start attempt; a version
        not ready by then has its error in ``resume_errors`` (and readiness reports it).
        """
        with self._ops:
            bindings = self.store.all()
            self.table.load(bindings)
            self.resume_errors = {}
            started: list[tuple[VersionKey, PoolLike]] = []
            for key in sorted({b.key for b in bindings.values()}):
                try:
                    record = self._require_installed(*key)
                    pool = self.supervisor.get(*key)
                    if pool is None or not _serving(pool):
                        spec = self._spec(record, self._bound_limit(key))
                        pool = self.supervisor.start(spec, wait_ready=False)
                    started.append((key, pool))
                except RunnerError as exc:
                    self.resume_errors[_version_label(key)] = exc.to_dict()
                    _log.warning("could not start %s at resume: %s", _version_label(key), exc)
            deadline = time.monotonic() + max((p.ready_budget_s() for _, p in started), default=0.0)
            for key, pool in started:
                if pool.wait_first_attempt(max(0.0, deadline - time.monotonic())) or _serving(pool):
                    continue
                last = pool.last_error or {}
                down = RunnerError(ErrorCode.WORKER_UNAVAILABLE,
                                   f"{_version_label(key)} did not start at resume: "
                                   f"{last.get('reason', 'no worker became ready')}; it keeps restarting "
                                   "with backoff", state=pool.state.value,
                                   last_error=last or None)
                self.resume_errors[_version_label(key)] = down.to_dict()
                _log.warning("%s", down.message)

    # --- binding -------------------------------------------------------------------------------

    def activate(self, name: str, version: str, pids: Sequence[str], memory_limit_mb: int | None = None
                 ) -> list[Binding]:
        """Bind ``pids`` to ``name``/``version``, starting its worker first.

        ``memory_limit_mb`` gives the version's workers their own memory limit (0: none), kept with
        the bindings; without it the version keeps the limit it has (else the setting). A version
        already running with another limit is restarted (drained) with the new one.

        Refused (2006 activation_conflict) when a pid is not in the version's supported_pids, the
        version is invalid, or a pid is already bound to another version (use ``switch``); 2009 when
        the version is not installed. If the worker cannot start, nothing is bound.
        """
        with self._ops:
            record, pids = self._check_target(name, version, pids)
            current = self.active()
            taken = {p: current[p] for p in pids if p in current and current[p].key != (name, version)}
            if taken:
                held = ", ".join(f"{p} -> {b.name} {b.version}" for p, b in sorted(taken.items()))
                raise RunnerError(PackageErrorCode.ACTIVATION_CONFLICT,
                                  f"pid(s) already bound to another version ({held}); use switch to move them "
                                  f"to {name} {version}", pids=sorted(taken), name=name, version=version)
            if memory_limit_mb is not None and memory_limit_mb < 0:
                raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                                  f"memory_limit_mb must be 0 (no limit) or more, got {memory_limit_mb}",
                                  memory_limit_mb=memory_limit_mb)
            limit = memory_limit_mb if memory_limit_mb is not None else self._bound_limit((name, version))
            return self._move(record, pids, smoke=False, memory_limit_mb=limit)

    def switch(self, name: str, version: str, pids: Sequence[str]) -> list[Binding]:
        """Move ``pids`` to ``name``/``version`` with zero failed calls.

        Starts the new version's worker, checks it with an info call, then flips every pid at once.
        Calls already routed to the old version finish there; sessions begun there finish there;
        the old worker is drained and stopped once no pid uses it. If the new version cannot start
        or fails its check, nothing changes and the old version keeps serving. After a successful
        switch, versions of ``name`` beyond ``settings.retain_versions`` may be removed.
        """
        with self._ops:
            record, pids = self._check_target(name, version, pids)
            bindings = self._move(record, pids, smoke=True, memory_limit_mb=self._bound_limit((name, version)))
            self._prune(name)
            return bindings

    def rollback(self, pids: Sequence[str]) -> list[Binding]:
        """Move each pid back to the previous version in its history that is still installed.

        Pids that roll back to the same version move together, each group like a ``switch``.
        2009 when a pid is unbound or has no earlier installed version.
        """
        with self._ops:
            pids = self._check_pids(pids)
            current = self.active()
            plan: dict[VersionKey, list[tuple[str, int]]] = {}
            for pid in pids:
                binding = current.get(pid)
                if binding is None:
                    raise RunnerError(PackageErrorCode.NOT_FOUND,
                                      f"pid {pid!r} has no active version to roll back from; use activate",
                                      pid=pid)
                target = self._rollback_target(pid, binding)
                plan.setdefault(target[0], []).append((pid, target[1]))
            records = {key: self._require_installed(*key) for key in plan}
            if self._admit is not None:
                for record in records.values():  # all targets admitted before any pid moves
                    self._admit(record)
            result: list[Binding] = []
            for key, entries in plan.items():
                record = records[key]
                first_pid, first_index = entries[0]  # the limit the version had in that activation
                limit = self.store.history(first_pid)[first_index].memory_limit_mb
                self._start_checked(record, smoke=True, memory_limit_mb=limit)
                new = [self.store.rebind_to_history(pid, index) for pid, index in entries]
                self._flip(new)
                result.extend(new)
            self._retire_unused({b.key for b in current.values() if b.pid in pids})
            return result

    def deactivate(self, pids: Sequence[str]) -> None:
        """Unbind ``pids`` (2009 if one is not bound); workers no pid uses any more are drained and stopped."""
        with self._ops:
            pids = self._check_pids(pids)
            current = self.active()
            unbound = [p for p in pids if p not in current]
            if unbound:
                raise RunnerError(PackageErrorCode.NOT_FOUND, f"pid(s) {unbound} have no active version",
                                  pids=unbound)
            self.store.unbind(pids)
            self.table.unbind(pids)
            self._retire_unused({current[p].key for p in pids})

    def uninstall(self, name: str, version: str, force: bool = False) -> None:
        """Remove ``name``/``version``.

        Refused with 2007 unsafe_uninstall while it is active for any pid or has calls in flight.
        With ``force``: unbind its pids, drain its in-flight calls, stop its worker, then remove.
        """
        with self._ops:
            key = (name, version)
            if self.registry.get(name, version) is None:
                raise RunnerError(PackageErrorCode.NOT_FOUND, f"{name} {version} is not installed",
                                  name=name, version=version)
            bound = sorted(p for p, b in self.active().items() if b.key == key)
            # The router's count covers calls about to reach the pool; the pool's, calls from elsewhere.
            busy = max(self.in_flight(name, version), self._pool_in_flight(key))
            if not force and bound:
                raise RunnerError(PackageErrorCode.UNSAFE_UNINSTALL,
                                  f"{name} {version} is active for pid(s) {bound}; switch or deactivate them "
                                  "first, or uninstall with force", name=name, version=version, pids=bound)
            if not force and busy:
                raise RunnerError(PackageErrorCode.UNSAFE_UNINSTALL,
                                  f"{name} {version} has {busy} call(s) in flight; try again when they have "
                                  "finished, or uninstall with force", name=name, version=version,
                                  in_flight=busy)
            if bound:
                self.store.unbind(bound)
                self.table.unbind_version(key)
            self._retire(key, session_grace_s=0.0)
            self.installer.remove(name, version)

    # --- explicit worker control ---------------------------------------------------------------

    def start(self, name: str, version: str) -> Any:
        """Start the workers of an installed version (no pid is bound); returns the pool's status."""
        with self._ops:
            record = self._require_installed(name, version)
            return self._ensure_started(record, self._bound_limit((name, version))).status()

    def stop(self, name: str, version: str, drain_timeout_s: float | None = None) -> None:
        """Drain and stop the workers of ``name``/``version``. Bound pids get 1016 until it is started."""
        with self._ops:
            self.registry.require(name, version)
            self.supervisor.stop(name, version, drain_timeout_s=(
                self.drain_timeout_s if drain_timeout_s is None else drain_timeout_s))

    def restart(self, name: str, version: str) -> Any:
        """Restart the workers of ``name``/``version``."""
        with self._ops:
            self.registry.require(name, version)
            return self.supervisor.restart(name, version)

    # --- calls ---------------------------------------------------------------------------------

    def reserve_image(self, pid: str, session_id: str | None, shape: tuple[int, ...]) -> ImageReservation | None:
        """Shared memory on a worker of the version ``pid`` is bound to, for a ``shape`` (H, W[, C])
        uint8 image still arriving; None when there is none to be had (the image is copied later).
        Never raises: the call itself reports an unbound pid or a stopped version."""
        binding = self.table.binding(pid)
        pool = self.supervisor.get(*binding.key) if binding is not None else None
        if pool is None or len(shape) not in (2, 3):
            return None
        channels = shape[2] if len(shape) == 3 else 1
        return pool.reserve_image(shape[0], shape[1], channels, session_id)

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
            key = self.table.enter(pid, request.session_id)  # the one place the pid is resolved
            try:
                self._check_request(key, request)
                try:
                    outcome = self._call(key, pid, request, timeout_s)
                except RunnerError as exc:
                    if not (attempt == 0 and exc.code == ErrorCode.WORKER_UNAVAILABLE.value
                            and self.table.moved(pid, key)):
                        self._record(key, exc.name, time.monotonic() - started)
                        raise
            finally:
                self.table.leave(key, pid, request.session_id, request.end_session)
            if outcome is not None and not (attempt == 0 and outcome.error_code == ErrorCode.WORKER_UNAVAILABLE.value
                                            and self.table.moved(pid, key)):
                break
            # The version this call resolved to was retired between resolving and calling; the
            # pid's current version takes the call instead.
            self.table.drop_pin(pid, request.session_id, key)
            outcome = None
        assert outcome is not None and key is not None
        checks_started = time.monotonic()
        checked = normalise(request.phase, outcome, self.settings.max_defects)
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
        if self.recorder is not None:
            self.recorder.record_call(key[0], key[1], status, latency_s)

    def _check_request(self, key: VersionKey, request: CallRequest) -> None:
        """Refuse up front what the workers of ``key`` cannot run (by their dialect's rules)."""
        pool = self.supervisor.get(*key)
        live = pool.dialect if pool is not None else None
        # Before its first worker said hello, the registry's record tells (none for a version
        # installed without the smoke test); the registry is read only then, off the hot path.
        recorded = (self.registry.get(*key) or {}).get("dialect") if live is None else None
        strategy = known_strategy(live, recorded)
        if strategy is not None:
            strategy.check_request(key[0], key[1], request)

    # --- routing internals ---------------------------------------------------------------------

    def _call(self, key: VersionKey, pid: str, request: CallRequest, timeout_s: float | None) -> CallOutcome:
        pool = self.supervisor.get(*key)
        if pool is None:
            raise RunnerError(ErrorCode.WORKER_UNAVAILABLE,
                              f"{_version_label(key)} serves pid {pid!r} but has no running worker; "
                              "start it (or check its logs for why it stopped)",
                              name=key[0], version=key[1], pid=pid)
        outcome: CallOutcome = pool.call(request, timeout_s)
        return outcome

    def _flip(self, bindings: Iterable[Binding]) -> None:
        self.table.flip(bindings)

    def _check_pids(self, pids: Sequence[str]) -> list[str]:
        if isinstance(pids, str) or not isinstance(pids, Sequence) or not pids:
            raise RunnerError(PackageErrorCode.INVALID_REQUEST, "give a non-empty list of pids")
        checked: list[str] = []
        for pid in pids:
            if check_pid(pid) not in checked:
                checked.append(pid)
        return checked

    def _require_installed(self, name: str, version: str) -> Record:
        record = self.registry.get(name, version)
        if record is None:
            raise RunnerError(PackageErrorCode.NOT_FOUND,
                              f"{name} {version} is not installed; install its package first",
                              name=name, version=version)
        if record.get("state") == INVALID:
            error = record.get("last_error") or {}
            why = error.get("message") if isinstance(error, dict) else None
            raise RunnerError(PackageErrorCode.ACTIVATION_CONFLICT,
                              f"{name} {version} is installed but invalid"
                              f"{f' ({why})' if why else ''}; install a fixed package",
                              name=name, version=version, last_error=error)
        return record

    def _check_target(self, name: str, version: str, pids: Sequence[str]) -> tuple[Record, list[str]]:
        pids = self._check_pids(pids)
        record = self._require_installed(name, version)
        supported = [str(p) for p in record.get("supported_pids") or []]
        # No supported_pids (a public SDK 0.3.x manifest): the operator's binding decides.
        unsupported = [p for p in pids if p not in supported] if supported else []
        if unsupported:
            raise RunnerError(PackageErrorCode.ACTIVATION_CONFLICT,
                              f"{name} {version} does not support pid(s) {unsupported}; it supports {supported}",
                              name=name, version=version, pids=unsupported, supported_pids=supported)
        return record, pids

    def _bound_limit(self, key: VersionKey) -> int | None:
        """The memory limit of ``key``'s newest current binding (None: the setting applies)."""
        bound = [b for b in self.table.bindings().values() if b.key == key]
        return max(bound, key=lambda b: b.activated_at).memory_limit_mb if bound else None

    def _spec(self, record: Record, memory_limit_mb: int | None = None) -> WorkerSpec:
        name, version = str(record["name"]), str(record["version"])
        version_dir = self.layout.version_dir(name, version)
        package_rel = record.get("package_dir")
        package_dir = version_dir / str(package_rel) if package_rel else version_dir
        venv_python = self.layout.venv_python(name, version)
        recorded = record.get("python")
        python = venv_python if venv_python.exists() or not recorded else Path(str(recorded))
        entry = record.get("entry_point")
        return WorkerSpec(name=name, version=version, version_dir=version_dir, package_dir=package_dir,
                          python=python, entry_point=str(entry) if entry else None, memory_limit_mb=memory_limit_mb)

    def _ensure_started(self, record: Record, memory_limit_mb: int | None) -> PoolLike:
        """The version's pool, started (and ready) if it was not serving; restarted if it runs
        with another memory limit."""
        name, version = str(record["name"]), str(record["version"])
        spec = self._spec(record, memory_limit_mb)
        pool = self.supervisor.get(name, version)
        if pool is not None and _serving(pool) and pool.spec == spec:
            return pool
        if pool is not None and _serving(pool):
            self.supervisor.stop(name, version, drain_timeout_s=self.drain_timeout_s)
        return self.supervisor.start(spec, wait_ready=True)

    def _start_checked(self, record: Record, smoke: bool, memory_limit_mb: int | None = None) -> PoolLike:
        """Start the version (if needed) and, with ``smoke``, prove it answers an info call.

        On failure the version is stopped again if this call started it and no pid uses it, and a
        RunnerError says why; nothing was bound.
        """
        name, version = str(record["name"]), str(record["version"])
        existing = self.supervisor.get(name, version)
        was_serving = existing is not None and _serving(existing)
        try:
            pool = self._ensure_started(record, memory_limit_mb)
        except RunnerError as exc:
            raise RunnerError(exc.code, f"{name} {version} could not start, nothing was changed: {exc.message}",
                              name=name, version=version, **exc.details) from exc
        # The registry has no dialect for a version installed without the smoke test: ask the pool.
        strategy = known_strategy(pool.dialect, record.get("dialect"))
        if smoke and (strategy is None or strategy.checks_info_on_activation):
            problem = self._smoke(pool)
            if problem is not None:
                if not was_serving and not self._bound((name, version)):
                    self.supervisor.stop(name, version, drain_timeout_s=self.drain_timeout_s)
                raise RunnerError(PackageErrorCode.SMOKE_TEST_FAILED,
                                  f"{name} {version} started but failed its check, nothing was changed: {problem}",
                                  name=name, version=version)
        return pool

    def _smoke(self, pool: PoolLike) -> str | None:
        """None if the pool answers a valid info call, else what went wrong."""
        try:
            outcome = pool.call(CallRequest(phase="info"), self.settings.info_timeout_ms / 1000)
        except RunnerError as exc:
            return exc.message
        checked = normalise("info", outcome, self.settings.max_defects)
        if checked.status != "OK":
            return f"info call returned {checked.error_code} {checked.error_name}: {checked.message}"
        return None

    def _move(self, record: Record, pids: list[str], smoke: bool, memory_limit_mb: int | None = None
              ) -> list[Binding]:
        """Start (and check) the version, write the bindings, flip the table, retire what is unused."""
        key = (str(record["name"]), str(record["version"]))
        before = self.active()
        self._start_checked(record, smoke=smoke, memory_limit_mb=memory_limit_mb)
        bindings = self.store.bind(pids, *key, memory_limit_mb=memory_limit_mb)
        self._flip(bindings)
        self._retire_unused({before[p].key for p in pids if p in before and before[p].key != key})
        return bindings

    def _bound(self, key: VersionKey) -> bool:
        return self.table.bound(key)

    def _pool_in_flight(self, key: VersionKey) -> int:
        pool = self.supervisor.get(*key)
        if pool is None:
            return 0
        return int(pool.in_flight())

    def _retire_unused(self, keys: Iterable[VersionKey]) -> None:
        for key in sorted(set(keys)):
            if not self._bound(key):
                self._retire(key, self.session_grace_s)

    def _retire(self, key: VersionKey, session_grace_s: float) -> None:
        """Wait until no call is in flight for ``key`` and its sessions are idle, then stop its worker."""
        deadline = self.table.now() + self.drain_timeout_s
        self.table.close_when_settled(key, session_grace_s, deadline)
        try:
            if self.supervisor.get(*key) is not None:
                self.supervisor.stop(key[0], key[1], drain_timeout_s=max(deadline - self.table.now(), 1.0))
        finally:
            self.table.closed(key)

    def _rollback_target(self, pid: str, current: Binding) -> tuple[VersionKey, int]:
        def usable(key: VersionKey) -> bool:
            record = self.registry.get(*key)
            return record is not None and record.get("state") != INVALID

        return rollback_target(pid, current, self.store.history(pid), usable)

    def _prune(self, name: str) -> None:
        """Remove versions of ``name`` that were once active but are beyond ``retain_versions``.

        Versions never activated are left alone (someone installed them for a reason), as are
        versions bound to any pid.
        """
        bound = {b.key for b in self.active().values()}
        for key in prune_candidates(self.registry.list(name=name), self.store.ever_bound(),
                                    self.settings.retain_versions, self.store.last_used):
            if key in bound or self.in_flight(*key) or self._pool_in_flight(key):
                continue
            try:
                if self.supervisor.get(*key) is not None:
                    self.supervisor.stop(key[0], key[1], drain_timeout_s=self.drain_timeout_s)
                self.installer.remove(*key)
            except RunnerError as exc:
                # Pruning is housekeeping: the switch already succeeded, so report and go on.
                _log.warning("could not prune %s: %s", _version_label(key), exc)


def _serving(pool: PoolLike) -> bool:
    return pool.state in SERVING_STATES
