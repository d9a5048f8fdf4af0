"""Routes calls for a product id (pid) to the worker pool of the version bound to it, and moves pids
between versions without dropping a call.

Management operations (activate, switch, rollback, deactivate, uninstall, start/stop/restart) are
serialised by one re-entrant lock; they may block for seconds (worker start, drain). The pid ->
version table, the calls in flight and the session pins are a ``RouteTable`` (table.py, where its
concurrency model is described); which version a rollback returns to and which versions are pruned
is decided in retention.py. The pieces the operations are made of live next to this module:
targets.py (which versions and pids a request may act on), starting.py (start a version and prove
it answers), draining.py (drain, stop and prune versions no pid uses), calls.py (the call path:
a call resolves its pid once, ``RouteTable.enter``, and is checked against the dialect of the
version it resolved to). Router reaches pools, the supervisor and the installer only through the
protocols of protocols.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from runner.config import Settings
from runner.errors import PackageErrorCode, RunnerError
from runner.store.layout import RootLayout
from runner.store.registry import Registry, VersionRecord
from runner.supervision.dialects import CallRequest
from runner.supervision.dialects.reservation import ImageReservation

from .activation import ActivationStore, Binding, check_pid
from .calls import CallEntry, ExecutionResult, version_label
from .draining import VersionRetirer
from .protocols import CallRecorder, InstallerLike, PoolLike, SupervisorLike, serving
from .retention import rollback_target
from .starting import VersionStarter
from .table import SESSION_PIN_CAPACITY, RouteTable, VersionKey
from .targets import check_pids, check_target, require_installed

_log = logging.getLogger(__name__)

__all__ = ["ExecutionResult", "Router", "PoolLike", "SupervisorLike", "InstallerLike", "CallRecorder",
           "SESSION_PIN_CAPACITY", "VersionKey"]


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
                 admit: Callable[[VersionRecord], None] | None = None) -> None:
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
        self.calls = CallEntry(settings, registry, supervisor, self.table, recorder)
        self.starter = VersionStarter(settings, layout, supervisor, self.table)
        self.retirer = VersionRetirer(settings, registry, supervisor, installer, self.table, self.store)
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
                    record = require_installed(self.registry, *key)
                    pool = self.supervisor.get(*key)
                    if pool is None or not serving(pool):
                        spec = record.worker_spec(self.layout, self._bound_limit(key))
                        pool = self.supervisor.start(spec, wait_ready=False)
                    started.append((key, pool))
                except RunnerError as exc:
                    self.resume_errors[version_label(key)] = exc.to_dict()
                    _log.warning("could not start %s at resume: %s", version_label(key), exc)
            for label, error in self.starter.first_attempt_errors(started).items():
                self.resume_errors[label] = error

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
            record, pids = check_target(self.registry, name, version, pids)
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

    def switch(self, name: str, version: str, pids: Sequence[str],
               on_pruned: Callable[[VersionKey], None] | None = None) -> list[Binding]:
        """Move ``pids`` to ``name``/``version`` with zero failed calls.

        Starts the new version's worker, checks it with an info call, then flips every pid at once.
        Calls already routed to the old version finish there; sessions begun there finish there;
        the old worker is drained and stopped once no pid uses it. If the new version cannot start
        or fails its check, nothing changes and the old version keeps serving. After a successful
        switch, versions of ``name`` beyond ``settings.retain_versions`` may be removed: each is
        logged and passed to ``on_pruned``, so the caller can say so.
        """
        with self._ops:
            record, pids = check_target(self.registry, name, version, pids)
            bindings = self._move(record, pids, smoke=True, memory_limit_mb=self._bound_limit((name, version)))
            self.retirer.prune(name, on_pruned)
            return bindings

    def rollback(self, pids: Sequence[str]) -> list[Binding]:
        """Move each pid back to the version that served it before the current one (the latest
        entry of its history on another version that is still installed).

        The rollback is itself appended to the history, so a second rollback undoes the first:
        rolling back twice returns each pid to where it started.

        Pids that roll back to the same version move together, each group like a ``switch``.
        2009 when a pid is unbound or has no earlier installed version.
        """
        with self._ops:
            pids = check_pids(pids)
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
            records = {key: require_installed(self.registry, *key) for key in plan}
            if self._admit is not None:
                for record in records.values():  # all targets admitted before any pid moves
                    self._admit(record)
            result: list[Binding] = []
            for key, entries in plan.items():
                record = records[key]
                first_pid, first_index = entries[0]  # the limit the version had in that activation
                limit = self.store.history(first_pid)[first_index].memory_limit_mb
                self.starter.start_checked(record, smoke=True, memory_limit_mb=limit)
                new = [self.store.bind([pid], key[0], key[1], self.store.history(pid)[index].memory_limit_mb)[0]
                       for pid, index in entries]
                self._flip(new)
                result.extend(new)
            self.retirer.retire_unused({b.key for b in current.values() if b.pid in pids})
            return result

    def deactivate(self, pids: Sequence[str]) -> None:
        """Unbind ``pids`` (2009 if one is not bound); workers no pid uses any more are drained and stopped."""
        with self._ops:
            pids = check_pids(pids)
            current = self.active()
            unbound = [p for p in pids if p not in current]
            if unbound:
                raise RunnerError(PackageErrorCode.NOT_FOUND,
                                  f"pid(s) {', '.join(unbound)} have no active version",
                                  pids=unbound)
            self.store.unbind(pids)
            self.table.unbind(pids)
            self.retirer.retire_unused({current[p].key for p in pids})

    def uninstall(self, name: str, version: str, force: bool = False) -> list[str]:
        """Remove ``name``/``version``; returns the pids it served that are now unbound.

        Refused with 2007 unsafe_uninstall while it is active for any pid or has calls in flight.
        With ``force``: unbind its pids, drain its in-flight calls, stop its worker, then remove.
        The pids are left unbound on purpose (no fall back to an older version): a station must
        not start inspecting with a version nobody chose.
        """
        with self._ops:
            key = (name, version)
            if self.registry.get(name, version) is None:
                raise RunnerError(PackageErrorCode.NOT_FOUND, f"{name} {version} is not installed",
                                  name=name, version=version)
            bound = sorted(p for p, b in self.active().items() if b.key == key)
            # The router's count covers calls about to reach the pool; the pool's, calls from elsewhere.
            busy = max(self.in_flight(name, version), self.retirer.pool_in_flight(key))
            if not force and bound:
                raise RunnerError(PackageErrorCode.UNSAFE_UNINSTALL,
                                  f"{name} {version} is active for pid(s) {', '.join(bound)}; switch or deactivate "
                                  "them first, or uninstall with --force (API: force=true)",
                                  name=name, version=version, pids=bound)
            if not force and busy:
                raise RunnerError(PackageErrorCode.UNSAFE_UNINSTALL,
                                  f"{name} {version} has {busy} call(s) in flight; try again when they have "
                                  "finished, or uninstall with --force (API: force=true)", name=name, version=version,
                                  in_flight=busy)
            if bound:
                self.store.unbind(bound)
                self.table.unbind_version(key)
            self.retirer.retire(key, session_grace_s=0.0)
            self.installer.remove(name, version)
            return bound

    # --- explicit worker control ---------------------------------------------------------------

    def start(self, name: str, version: str) -> Any:
        """Start the workers of an installed version (no pid is bound); returns the pool's status."""
        with self._ops:
            record = require_installed(self.registry, name, version)
            return self.starter.ensure_started(record, self._bound_limit((name, version))).status()

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
        """Run ``request`` on the version bound to ``pid`` and return the checked result (calls.py).

        RunnerError 2009 when ``pid`` is unbound (the message names 1001 invalid_pid); the pool's
        RunnerError for a full queue or an unavailable worker. Everything the algorithm or worker
        does wrong is an ERROR result, never an exception.
        """
        return self.calls.execute(pid, request, timeout_s)

    # --- routing internals ---------------------------------------------------------------------

    def _flip(self, bindings: Iterable[Binding]) -> None:
        self.table.flip(bindings)

    def _bound_limit(self, key: VersionKey) -> int | None:
        """The memory limit of ``key``'s newest current binding (None: the setting applies)."""
        bound = [b for b in self.table.bindings().values() if b.key == key]
        return max(bound, key=lambda b: b.activated_at).memory_limit_mb if bound else None

    def _move(self, record: VersionRecord, pids: list[str], smoke: bool, memory_limit_mb: int | None = None
              ) -> list[Binding]:
        """Start (and check) the version, write the bindings, flip the table, retire what is unused."""
        key = record.key
        before = self.active()
        self.starter.start_checked(record, smoke=smoke, memory_limit_mb=memory_limit_mb)
        bindings = self.store.bind(pids, *key, memory_limit_mb=memory_limit_mb)
        self._flip(bindings)
        self.retirer.retire_unused({before[p].key for p in pids if p in before and before[p].key != key})
        return bindings

    def _rollback_target(self, pid: str, current: Binding) -> tuple[VersionKey, int]:
        def usable(key: VersionKey) -> bool:
            record = self.registry.get(*key)
            return record is not None and not record.invalid

        return rollback_target(pid, current, self.store.history(pid), usable)
