"""Taking versions out of service for the router: drain a version no pid uses (its calls in flight
finish, its sessions settle) and stop its workers; prune versions beyond ``retain_versions``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from runner.config import Settings
from runner.errors import RunnerError
from runner.store.registry import Registry

from .activation import ActivationStore
from .calls import version_label
from .protocols import InstallerLike, SupervisorLike
from .retention import prune_candidates
from .table import RouteTable, VersionKey

_log = logging.getLogger(__name__)


class VersionRetirer:
    """Drains, stops and prunes versions for the router (which serialises the calls)."""

    def __init__(self, settings: Settings, registry: Registry, supervisor: SupervisorLike,
                 installer: InstallerLike, table: RouteTable, store: ActivationStore) -> None:
        self._settings = settings
        self._registry = registry
        self._supervisor = supervisor
        self._installer = installer
        self._table = table
        self._store = store

    def pool_in_flight(self, key: VersionKey) -> int:
        """Calls the version's pool is running (including ones that did not come through routing)."""
        pool = self._supervisor.get(*key)
        if pool is None:
            return 0
        return int(pool.in_flight())

    def retire_unused(self, keys: Iterable[VersionKey]) -> None:
        """Retire each of ``keys`` that no pid is bound to any more."""
        for key in sorted(set(keys)):
            if not self._table.bound(key):
                self.retire(key, self._table.session_grace_s)

    def retire(self, key: VersionKey, session_grace_s: float) -> None:
        """Wait until no call is in flight for ``key`` and its sessions are idle, then stop its worker."""
        deadline = self._table.now() + self._table.drain_timeout_s
        self._table.close_when_settled(key, session_grace_s, deadline)
        try:
            if self._supervisor.get(*key) is not None:
                self._supervisor.stop(key[0], key[1], drain_timeout_s=max(deadline - self._table.now(), 1.0))
        finally:
            self._table.closed(key)

    def prune(self, name: str, on_pruned: Callable[[VersionKey], None] | None = None) -> None:
        """Remove versions of ``name`` that were once active but are beyond ``retain_versions``.

        Versions never activated are left alone (someone installed them for a reason), as are
        versions bound to any pid. Each removal is logged and passed to ``on_pruned``.
        """
        bound = {b.key for b in self._table.bindings().values()}
        for key in prune_candidates(self._registry.list(name=name), self._store.ever_bound(),
                                    self._settings.retain_versions, self._store.last_used):
            if key in bound or self._table.in_flight(key) or self.pool_in_flight(key):
                continue
            try:
                if self._supervisor.get(*key) is not None:
                    self._supervisor.stop(key[0], key[1], drain_timeout_s=self._table.drain_timeout_s)
                self._installer.remove(*key)
            except RunnerError as exc:
                # Pruning is housekeeping: the switch already succeeded, so report and go on.
                _log.warning("could not prune %s: %s", version_label(key), exc)
                continue
            _log.info("removed %s: more than retain_versions=%d versions of %s were once active",
                      version_label(key), self._settings.retain_versions, name)
            if on_pruned is not None:
                on_pruned(key)
