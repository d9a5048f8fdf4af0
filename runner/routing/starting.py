"""Bringing a version's workers up for routing: start (or restart with another memory limit) its pool,
and with a check, prove it answers an info call before any pid is moved to it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from procvision_algorithm_sdk.errors import ErrorCode
from runner.config import Settings
from runner.errors import PackageErrorCode, RunnerError
from runner.store.layout import RootLayout
from runner.store.registry import VersionRecord
from runner.supervision.dialects import CallRequest, known_strategy

from .calls import version_label
from .protocols import PoolLike, SupervisorLike, serving
from .results import normalise
from .table import RouteTable, VersionKey

_log = logging.getLogger(__name__)


class VersionStarter:
    """Starts versions' pools for the router (which serialises the calls)."""

    def __init__(self, settings: Settings, layout: RootLayout, supervisor: SupervisorLike,
                 table: RouteTable) -> None:
        self._settings = settings
        self._layout = layout
        self._supervisor = supervisor
        self._table = table

    def ensure_started(self, record: VersionRecord, memory_limit_mb: int | None) -> PoolLike:
        """The version's pool, started (and ready) if it was not serving; restarted if it runs
        with another memory limit."""
        name, version = record.key
        spec = record.worker_spec(self._layout, memory_limit_mb)
        pool = self._supervisor.get(name, version)
        if pool is not None and serving(pool) and pool.spec == spec:
            return pool
        if pool is not None and serving(pool):
            self._supervisor.stop(name, version, drain_timeout_s=self._table.drain_timeout_s)
        return self._supervisor.start(spec, wait_ready=True)

    def start_checked(self, record: VersionRecord, smoke: bool, memory_limit_mb: int | None = None) -> PoolLike:
        """Start the version (if needed) and, with ``smoke``, prove it answers an info call.

        On failure the version is stopped again if this call started it and no pid uses it, and a
        RunnerError says why; nothing was bound.
        """
        name, version = record.key
        existing = self._supervisor.get(name, version)
        was_serving = existing is not None and serving(existing)
        try:
            pool = self.ensure_started(record, memory_limit_mb)
        except RunnerError as exc:
            raise RunnerError(exc.code, f"{name} {version} could not start, nothing was changed: {exc.message}",
                              name=name, version=version, **exc.details) from exc
        # The registry has no dialect for a version installed without the smoke test: ask the pool.
        strategy = known_strategy(pool.dialect, record.dialect)
        if smoke and (strategy is None or strategy.checks_info_on_activation):
            problem = self._smoke(pool)
            if problem is not None:
                if not was_serving and not self._table.bound((name, version)):
                    self._supervisor.stop(name, version, drain_timeout_s=self._table.drain_timeout_s)
                raise RunnerError(PackageErrorCode.SMOKE_TEST_FAILED,
                                  f"{name} {version} started but failed its check, nothing was changed: {problem}",
                                  name=name, version=version)
        return pool

    def _smoke(self, pool: PoolLike) -> str | None:
        """None if the pool answers a valid info call, else what went wrong."""
        try:
            outcome = pool.call(CallRequest(phase="info"), self._settings.info_timeout_ms / 1000)
        except RunnerError as exc:
            return exc.message
        checked = normalise("info", outcome, self._settings.max_defects)
        if checked.status != "OK":
            return f"info call returned {checked.error_code} {checked.error_name}: {checked.message}"
        return None

    def first_attempt_errors(self, started: Sequence[tuple[VersionKey, PoolLike]]) -> dict[str, dict[str, Any]]:
        """Wait, bounded and for all at once, for each pool's first start attempt; the error of each
        version not serving by then, by its label ("name version")."""
        errors: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + max((p.ready_budget_s() for _, p in started), default=0.0)
        for key, pool in started:
            if pool.wait_first_attempt(max(0.0, deadline - time.monotonic())) or serving(pool):
                continue
            last = pool.last_error or {}
            down = RunnerError(ErrorCode.WORKER_UNAVAILABLE,
                               f"{version_label(key)} did not start at resume: "
                               f"{last.get('reason', 'no worker became ready')}; it keeps restarting "
                               "with backoff", state=pool.state.value,
                               last_error=last or None)
            errors[version_label(key)] = down.to_dict()
            _log.warning("%s", down.message)
        return errors
