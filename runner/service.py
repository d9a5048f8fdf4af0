"""RunnerService: the one facade the HTTP API and the daemon drive.

It owns the parts of a running daemon (registry, installer, supervisor, router, metrics) and turns
their results into JSON-able dicts. The API layer only parses requests and renders responses; every
decision lives below this facade.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.config import Settings
from runner.errors import PackageErrorCode, RunnerError
from runner.jsonable import jsonable
from runner.metrics import Metrics
from runner.routing.activation import Binding
from runner.service_logs import WORKER_LOG, tail_lines
from runner.service_results import (
    BindingsChange,
    Deactivated,
    PidChange,
    Uninstalled,
    VersionRef,
    VersionStatus,
    moves,
)
from runner.service_smoke import is_deployed, not_deployed_report, rerun_smoke, smoke_to_report
from runner.store.atomic import read_json
from runner.store.registry import INVALID, VersionRecord
from runner.supervision.dialects import CallRequest
from runner.supervision.dialects.reservation import ImageReservation
from runner.supervision.sandbox import protections_for
from runner.supervision.states import SERVING_STATES, State
from runner.trust import view as trust_view

if TYPE_CHECKING:
    from runner.package.installer import Installer
    from runner.routing.activation import Binding
    from runner.routing.router import Router
    from runner.store.registry import Registry
    from runner.supervision.pool import VersionPool
    from runner.supervision.supervisor import Supervisor

_log = logging.getLogger("runner.service")
Progress = Callable[[str], None]


def _not_found(name: str, version: str) -> RunnerError:
    return RunnerError(PackageErrorCode.NOT_FOUND,
                       f"{name} {version} is not installed; `procvision-runner list` (GET /algorithms) shows what is",
                       name=name, version=version)


class RunnerService:
    """Install, validate, activate, execute and inspect algorithm versions of one runtime root."""

    def __init__(self, settings: Settings, registry: Registry, installer: Installer,
                 supervisor: Supervisor, router: Router, metrics: Metrics) -> None:
        self.settings = settings
        self.layout = settings.layout
        self.registry = registry
        self.installer = installer
        self.supervisor = supervisor
        self.router = router
        self.metrics = metrics

    @classmethod
    def create(cls, settings: Settings, metrics: Metrics | None = None) -> RunnerService:
        """Build the real parts for ``settings.root``."""
        from runner.package.installer import Installer
        from runner.routing.router import Router
        from runner.store.registry import Registry
        from runner.supervision.supervisor import Supervisor

        metrics = metrics or Metrics()
        layout = settings.layout
        layout.ensure()
        registry = Registry(layout)
        installer = Installer(settings, registry)
        supervisor = Supervisor(settings, layout, on_event=metrics.on_event)
        router = Router(settings, layout, registry, supervisor, installer, recorder=metrics,
                        admit=installer.trust.check_activation)
        metrics.add_collector(lambda: trust_view.metric_lines(registry.list(), installer.trust.store))
        return cls(settings, registry, installer, supervisor, router, metrics)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Reconcile the root after a crash, then bring the active versions' workers up."""
        self.installer.recover()
        self.router.resume()

    def close(self) -> None:
        """Stop every worker (drains in-flight calls up to the shutdown grace) and background compiles."""
        self.supervisor.shutdown()
        self.installer.close()

    # --- packages --------------------------------------------------------------------------------

    def install(self, zip_path: Path, progress: Progress | None = None) -> dict[str, Any]:
        """Install a package zip; returns the install result as JSON.

        A version installed over a record of a failed attempt (state invalid) is a new install: its
        ``created_at`` is the time of this install, not of the failed one.
        """
        invalid_before = {r.key for r in self.registry.list(state=INVALID)}
        result = jsonable(self.installer.install(Path(zip_path), progress=progress))
        key = (str(result.get("name")), str(result.get("version")))
        if key in invalid_before and not result.get("idempotent"):
            record = self.registry.get(*key)
            if record is not None and not record.invalid:
                self.registry.update(key[0], key[1], created_at=record.updated_at)
        return dict(result)

    def validate_zip(self, zip_path: Path) -> dict[str, Any]:
        """Check a package zip without installing it: the SDK's ``validate --zip`` checks by the same
        names, plus this station's interpreter and install plan (SDK report shape)."""
        from runner.package.zip_validation import validate_package_zip

        return jsonable(validate_package_zip(self.installer, Path(zip_path)))

    def validate_installed(self, name: str, version: str, rerun: bool = False) -> dict[str, Any]:
        """The smoke report of an installed version in the SDK report shape; ``rerun`` runs it again."""
        record = self._record(name, version)
        if rerun and not is_deployed(self.layout, record):
            return not_deployed_report(record)
        smoke: Any = rerun_smoke(self.settings, self.layout, record) if rerun else record.smoke
        if not rerun and not smoke:
            raise RunnerError(PackageErrorCode.NOT_FOUND,
                              f"{name} {version} has no stored smoke report (installed with smoke_test off); "
                              "send {\"rerun\": true} to run the smoke test now", name=name, version=version)
        return smoke_to_report(name, version, jsonable(smoke), rerun)

    def uninstall(self, name: str, version: str, force: bool = False) -> Uninstalled:
        self._record(name, version)
        unbound = self.router.uninstall(name, version, force=force)
        # The stopped pool would otherwise shadow the record of a later reinstall ("stopped").
        self.supervisor.forget(name, version)
        self.metrics.forget_version(name, version)
        if unbound:
            _log.warning("uninstalled %s %s with force: pid(s) %s now have no active version",
                         name, version, ", ".join(unbound))
        return Uninstalled(name=name, version=version, removed=True, force=force, unbound_pids=list(unbound))

    # --- queries ---------------------------------------------------------------------------------

    def list_versions(self, name: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        """Registry records (with live worker state where a pool exists), filtered."""
        store = self.installer.trust.store
        records = [trust_view.annotate(self._with_runtime(r), store) for r in self.registry.list(name=name)]
        if state is not None:
            records = [r for r in records if r.get("state") == state]
        return records

    def show(self, name: str, version: str) -> dict[str, Any]:
        """Everything known about one version: record, manifest, get_info, workers, last error."""
        stored = self._record(name, version)
        record = trust_view.annotate(self._with_runtime(stored), self.installer.trust.store)
        pool = self._pool(name, version)
        status = jsonable(pool.status()) if pool is not None else None
        info = jsonable(pool.info) if pool is not None and pool.info else record.get("info")
        last_error = (status or {}).get("last_error") or record.get("last_error")
        active_pids = sorted(pid for pid, b in self.active().items() if b.key == (name, version))
        return {**record, "manifest": self._manifest(stored), "info": info, "workers": status,
                "last_error": last_error, "active_pids": active_pids,
                "log_file": str(self.log_file(name, version)),
                "memory_limit": (status or {}).get("memory_limit") or self._memory_limit(name, version)}

    def _memory_limit(self, name: str, version: str) -> dict[str, Any]:
        """How the workers of a version that is not running would be bounded (its newest binding's
        own limit, else the setting)."""
        bound = [b for b in self.router.active().values() if b.key == (name, version)]
        own = max(bound, key=lambda b: b.activated_at).memory_limit_mb if bound else None
        return dict(self.supervisor.memory_limit(own if own is not None else self.settings.worker_memory_limit_mb))

    def active(self) -> dict[str, Binding]:
        """The current bindings, by pid (sorted)."""
        return dict(sorted(self.router.active().items()))

    # --- activation ------------------------------------------------------------------------------

    def activate(self, name: str, version: str, pids: list[str], memory_limit_mb: int | None = None
                 ) -> BindingsChange:
        """Bind pids to a version; ``memory_limit_mb`` gives its workers their own memory limit."""
        self.installer.trust.check_activation(self._record(name, version))
        before = self.router.active()
        bindings = self.router.activate(name, version, pids, memory_limit_mb)
        return BindingsChange(bindings, moves(before, bindings), self.active())

    def switch(self, name: str, version: str, pids: list[str]) -> BindingsChange:
        """Move pids to a version once it is ready; ``pruned`` lists the old versions the switch
        removed because more than ``retain_versions`` of the package were once active."""
        self.installer.trust.check_activation(self._record(name, version))
        pruned: list[tuple[str, str]] = []
        before = self.router.active()
        bindings = self.router.switch(name, version, pids, on_pruned=pruned.append)
        for key in pruned:
            self.supervisor.forget(*key)
            self.metrics.forget_version(*key)
        return BindingsChange(bindings, moves(before, bindings), self.active(),
                              pruned=[VersionRef(n, v) for n, v in pruned],
                              retain_versions=self.settings.retain_versions)

    def rollback(self, pids: list[str]) -> BindingsChange:
        """Move each pid back to the version that served it before (twice: back where it started)."""
        before = self.router.active()
        bindings = self.router.rollback(pids)
        return BindingsChange(bindings, moves(before, bindings), self.active())

    def deactivate(self, pids: list[str]) -> Deactivated:
        """Unbind pids; ``changes`` says which version each one left."""
        before = self.router.active()
        self.router.deactivate(pids)
        changes = [PidChange(pid, VersionRef(before[pid].name, before[pid].version), None)
                   for pid in pids if pid in before]
        return Deactivated(list(pids), changes, self.active())

    def start_version(self, name: str, version: str) -> VersionStatus:
        self._record(name, version)
        self.router.start(name, version)
        return self._status_of(name, version)

    def stop_version(self, name: str, version: str) -> VersionStatus:
        self._record(name, version)
        self.router.stop(name, version)
        return self._status_of(name, version)

    def restart_version(self, name: str, version: str) -> VersionStatus:
        self._record(name, version)
        self.router.restart(name, version)
        return self._status_of(name, version)

    # --- calls -----------------------------------------------------------------------------------

    def reserve_image(self, pid: str, session_id: str | None, shape: tuple[int, ...]) -> ImageReservation | None:
        """Shared memory on the worker likely to run ``pid``'s next call, to receive its image into
        (``Router.reserve_image``); the caller releases it once the call is over."""
        return self.router.reserve_image(pid, session_id, shape)

    def execute(self, pid: str, request: CallRequest, timeout_s: float | None = None) -> dict[str, Any]:
        """Run one call on the version active for ``pid``. The router resolves the pid once, checks
        the request against that version's dialect and records the call's metrics either way."""
        return dict(jsonable(self.router.execute(pid, request, timeout_s=timeout_s)))

    # --- logs and health -------------------------------------------------------------------------

    def log_file(self, name: str, version: str) -> Path:
        """The worker log of a version (rotated copies are ``worker.log.1`` ...)."""
        return self.layout.log_dir(name, version) / WORKER_LOG

    def log_tail(self, name: str, version: str, lines: int) -> list[str]:
        """The last ``lines`` lines of the version's worker log (from disk, so it works when stopped)."""
        self._record(name, version)
        return tail_lines(self.log_file(name, version), lines)

    def readiness(self) -> tuple[bool, list[str]]:
        """Ready when every active version has a serving worker; otherwise the reasons why not."""
        reasons: list[str] = []
        versions = sorted({b.key for b in self.active().values()})
        for name, version in versions:
            pool = self._pool(name, version)
            if pool is None:
                failure = self.router.resume_errors.get(f"{name} {version}")
                why = f": {failure.get('message')}" if failure else ""
                reasons.append(f"{name} {version}: no workers started{why}")
                continue
            state = pool.state
            if state not in SERVING_STATES:
                reasons.append(f"{name} {version}: workers are {state.value}")
        return (not reasons, reasons)

    # --- helpers ---------------------------------------------------------------------------------

    def _record(self, name: str, version: str) -> VersionRecord:
        record = self.registry.get(name, version)
        if record is None:
            raise _not_found(name, version)
        return record

    def _pool(self, name: str, version: str) -> VersionPool | None:
        return self.supervisor.get(name, version)

    def _with_runtime(self, record: VersionRecord) -> dict[str, Any]:
        """The record as JSON, with its live worker state and sandbox where a pool exists."""
        body = record.to_dict()
        pool = self._pool(*record.key)
        if pool is not None:
            state = pool.state
            spec = pool.spec
            boxed = protections_for(self.settings, spec.name, spec.version, spec.package_dir, spec.python)
            body.update(state=state.value if isinstance(state, State) else str(state), sandbox=boxed.summary())
        return body

    def _status_of(self, name: str, version: str) -> VersionStatus:
        pool = self._pool(name, version)
        return VersionStatus(name=name, version=version,
                             state=pool.state.value if pool is not None else self._record(name, version).state,
                             workers=jsonable(pool.status()) if pool is not None else None)

    def _manifest(self, record: VersionRecord) -> dict[str, Any] | None:
        manifest = read_json(record.package_folder(self.layout) / "manifest.json")
        return manifest if isinstance(manifest, dict) else None
