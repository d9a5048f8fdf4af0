"""The supervisor: every running version's pool of workers, started, stopped and shut down here."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from procvision_algorithm_sdk.errors import ErrorCode
from runner.config import Settings
from runner.errors import RunnerError
from runner.store.layout import RootLayout

from .containment import ContainmentReport
from .dialects import posix_shm_dir
from .image_size import LastImageSize
from .launch import Launcher
from .leftovers import LeftoverSweep, ProcessGroupLedger, end_leftover_groups, end_orphaned_cgroups
from .pool import VersionPool
from .runtime_dirs import create_runtime_dir, remove_orphaned_runtime_dirs
from .sandbox import refuse_unboxed
from .segments import StaleSweep, remove_stale_segments
from .spec import WorkerSpec
from .states import LIVE_STATES, SupervisorEvent

_log = logging.getLogger(__name__)


def _runtime_parent() -> Path | None:
    # Public workers read call images from files: keep them in RAM (tmpfs) when the host has one.
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


class Supervisor:
    """Owns the worker pools of all running versions.

    Each worker gets a private folder (its ``PROC_SHM_DIR``) under one runtime folder that this
    supervisor creates and removes in ``shutdown``. Creating one first removes stale image segments
    (``remove_stale_segments``) from the shared memory folder, and the runtime folders of daemons
    that are gone (killed before their ``shutdown``), and ends the worker process groups and
    cgroups such daemons recorded (``leftovers``) before any worker of its own starts.

    Workers are started by one ``Launcher``: an allow-listed environment, their own process group,
    and the memory limit of the mechanism the probe chose (``containment``). A caller may pass its
    own ``launcher`` (one built with a chosen containment, say); it then also decides the
    environment, and ``base_env`` is not used.
    """

    def __init__(self, settings: Settings, layout: RootLayout,
                 on_event: Callable[[SupervisorEvent], None] | None = None, *,
                 base_env: Mapping[str, str] | None = None, launcher: Launcher | None = None) -> None:
        self.settings = settings
        self.layout = layout
        self._on_event = on_event
        # The environment workers inherit (allow-listed per worker); the daemon's own by default.
        self._base_env = dict(base_env) if base_env is not None else settings.inherited_environment
        #: Worker trees a killed predecessor left running, ended now.
        self.leftovers: LeftoverSweep = end_leftover_groups(layout.worker_groups)
        self._launcher = launcher if launcher is not None else Launcher(
            settings, self._base_env, ProcessGroupLedger(layout.worker_groups))
        end_orphaned_cgroups(self._launcher.containment.cgroup_parent, self.leftovers)
        if self.leftovers.groups or self.leftovers.cgroups:
            _log.warning("ended worker processes a killed daemon left running: groups %s, cgroups %s",
                         self.leftovers.groups, self.leftovers.cgroups)
        report = self._launcher.report
        _log.info("worker memory limit: %s MB via %s (%s)", report.limit_mb, report.mechanism, report.reason)
        self._lock = threading.Lock()
        self._pools: dict[tuple[str, str], VersionPool] = {}
        #: The size of the images calls carry: a version's workers prepare segments of it at start.
        self.image_size = LastImageSize()
        self._closed = False
        parent = _runtime_parent()
        self.runtime_dir = create_runtime_dir(parent)
        #: Runtime folders of dead daemons removed at start (for diagnostics).
        self.stale_runtime_dirs: list[Path] = remove_orphaned_runtime_dirs(parent, keep=self.runtime_dir)
        #: Image segments a killed predecessor left in the segment folder, removed now if nobody
        #: holds them (what was removed, kept and could not be checked: for diagnostics).
        self.stale_segments: StaleSweep = remove_stale_segments(posix_shm_dir())

    def start(self, spec: WorkerSpec, wait_ready: bool = True) -> VersionPool:
        """Start the workers of ``spec``'s version (or return its pool if already live).

        Raises RunnerError (HANDSHAKE_FAILED, WORKER_UNAVAILABLE...) with the exit code and stderr
        tail when ``wait_ready`` and no worker became ready.
        """
        refuse_unboxed(self.settings, f"{spec.name} {spec.version}")
        with self._lock:
            if self._closed:
                raise RunnerError(ErrorCode.WORKER_UNAVAILABLE, "the supervisor is shut down")
            key = (spec.name, spec.version)
            pool = self._pools.get(key)
            if pool is not None and pool.live():
                return pool
            if pool is None or pool.spec != spec:
                if pool is not None:
                    pool.close()
                pool = VersionPool(spec, self.settings, self.layout, self.runtime_dir, self._launcher,
                                   self._on_event, self.image_size)
                self._pools[key] = pool
        pool.start(wait_ready)
        return pool

    @property
    def launcher(self) -> Launcher:
        """What spawns this supervisor's workers (its containment places them in cgroups or limits)."""
        return self._launcher

    @property
    def containment(self) -> ContainmentReport:
        """How worker memory is bounded here, and why that way."""
        return self._launcher.report

    def memory_limit(self, limit_mb: int) -> dict[str, object]:
        """What ``status`` shows of the containment for workers with ``limit_mb`` (MB, 0 = none)."""
        return self._launcher.status(limit_mb)

    def get(self, name: str, version: str) -> VersionPool | None:
        """The pool of a version, whatever its state, or None if it was never started."""
        with self._lock:
            return self._pools.get((name, version))

    def forget(self, name: str, version: str) -> bool:
        """Drop the pool of a version that is gone (uninstalled), stopping any worker it still has.

        Returns True if there was a pool. A later ``start`` builds a fresh one.
        """
        with self._lock:
            pool = self._pools.pop((name, version), None)
        if pool is None:
            return False
        if pool.live():
            pool.stop()
        pool.close()
        return True

    def pools(self) -> list[VersionPool]:
        with self._lock:
            return list(self._pools.values())

    def stop(self, name: str, version: str, drain_timeout_s: float | None = None) -> None:
        """Stop taking calls for a version, let in-flight ones finish (bounded), stop its workers."""
        pool = self.get(name, version)
        if pool is None:
            raise RunnerError(ErrorCode.WORKER_UNAVAILABLE, f"{name} {version} has no workers to stop")
        pool.stop(drain_timeout_s)

    def restart(self, name: str, version: str) -> VersionPool:
        """Stop and start a version's workers again (also the explicit start after FAILED)."""
        pool = self.get(name, version)
        if pool is None:
            raise RunnerError(ErrorCode.WORKER_UNAVAILABLE, f"{name} {version} was never started")
        pool.stop()
        pool.start(wait_ready=True)
        return pool

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Stop every pool (in parallel), then remove the runtime folder. Idempotent."""
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
        threads = [threading.Thread(target=p.stop, args=(timeout_s,), daemon=True) for p in pools]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join((timeout_s or self.settings.shutdown_grace_s) + self.settings.shutdown_grace_s + 15.0)
        for pool in pools:
            if any(w.state in LIVE_STATES for w in pool.workers):
                # stop() is bounded, so this means a thread is stuck; kill what is left.
                for worker in pool.workers:
                    worker.stop(0.1)
            pool.close()
        if self._launcher.ledger is not None:
            self._launcher.ledger.close()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
