"""Starting one worker process: its command line, environment and containment, the handshake, and
the check that the algorithm really loaded.

``worker_command`` is the one place that says what a worker process is (argv, cwd, environment); a
wrapper such as a sandbox goes around the adapter's argv there, inside the placement's wrapper (so
the cgroup or rlimit also covers the sandbox's own processes). ``Launcher`` (the real
``launcher.WorkerLauncher``) turns it into a running ``AdapterClient`` placed under the memory
limit (``containment``) and recorded for the clean-up after a daemon crash (``leftovers``);
``LaunchedWorker.end`` ends the whole tree on every exit path.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.client import AdapterClient, HandshakeFailed, WorkerFailure, adapter_argv
from runner import __version__ as runner_version
from runner.config import Settings

from .containment import Containment, ContainmentReport, Placement, choose_containment
from .dialects import Budget, Dialect, detect_dialect, strategy_for, worker_environment
from .launcher import ExitCallback, Handshake, LaunchedProcess, WorkerLauncher
from .leftovers import ProcessGroupLedger
from .sandbox import box_worker
from .sandbox.base import Protections
from .spec import WorkerSpec

_labels = itertools.count(1)


@dataclass(frozen=True)
class WorkerCommand:
    """Everything that describes one worker process before it is spawned."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    #: What the sandbox gives this worker (shown in the smoke report and ``show``).
    protections: Protections
    #: Where the runner writes this worker's image segments (None: the shared default folder).
    segment_dir: Path | None


def worker_command(settings: Settings, spec: WorkerSpec, shm_dir: Path, base_env: Mapping[str, str],
                   placement: Placement) -> WorkerCommand:
    """The worker process of ``spec``: allow-listed environment, inside the daemon's sandbox, and the
    placement's limit applied before the sandbox starts (so it covers the whole boxed tree)."""
    env = worker_environment(base_env, spec.package_dir, shm_dir, settings.max_frame_bytes,
                             extra_allow=settings.worker_env_allow)
    boxed = box_worker(settings, adapter_argv(str(spec.python), spec.entry_point), env, name=spec.name,
                       version=spec.version, package_dir=spec.package_dir, python=spec.python, work_dir=shm_dir)
    return WorkerCommand(placement.wrap(boxed.argv), spec.package_dir, dict(boxed.env), boxed.protections,
                         boxed.segment_dir)


def memory_limit_of(spec: WorkerSpec, settings: Settings) -> int:
    """The memory limit (MB, 0 = none) of ``spec``'s workers: its activation's, else the setting."""
    return spec.memory_limit_mb if spec.memory_limit_mb is not None else settings.worker_memory_limit_mb


class LaunchedWorker(LaunchedProcess):
    """One spawned (or about to be spawned) worker process and the tree around it."""

    def __init__(self, client: AdapterClient, placement: Placement, key: str,
                 ledger: ProcessGroupLedger | None) -> None:
        self.client: AdapterClient = client
        self.placement = placement
        self.key = key
        self._ledger = ledger

    def memory_cause(self, exit_code: int | None, stderr_tail: list[str]) -> str | None:
        """Why the process ended, if its memory limit ended it; None otherwise."""
        if not self.placement.memory_killed(exit_code, stderr_tail):
            return None
        return memory_message(self.placement)

    def memory_error_reply(self, details: dict[str, Any]) -> str | None:
        """The over-the-limit message if RLIMIT_DATA made an allocation of the call fail."""
        return memory_message(self.placement) if self.placement.memory_error_reply(details) else None

    def end(self) -> None:
        """Kill the process and everything it started (process group and cgroup), forget it."""
        self.client.kill()
        self.placement.terminate()
        if self._ledger is not None:
            self._ledger.remove(self.key)


def memory_message(placement: Placement) -> str:
    """The message of a call whose worker went over its memory limit."""
    return (f"the worker went over its memory limit of {placement.describe()} and was killed; raise "
            "worker_memory_limit_mb or activate the version with a larger memory limit")


class Launcher(WorkerLauncher):
    """Spawns the worker processes of one supervisor, each contained and recorded."""

    def __init__(self, settings: Settings, base_env: Mapping[str, str], ledger: ProcessGroupLedger | None,
                 containment: tuple[Containment, ContainmentReport] | None = None) -> None:
        self.settings = settings
        self.base_env = dict(base_env)
        self.ledger = ledger
        self.containment, self.report = containment or choose_containment(
            settings.worker_memory_mechanism, settings.worker_memory_limit_mb)

    def launch(self, spec: WorkerSpec, index: int, shm_dir: Path, on_stderr_line: Callable[[str], None],
               on_exit: ExitCallback) -> LaunchedWorker:
        """An AdapterClient (not yet started) for one worker process of ``spec``, with its placement.

        Raises OSError if the placement (a cgroup) cannot be made.
        """
        key = f"pv-{os.getpid()}-{next(_labels)}-w{index}"
        placement = self.containment.place(key, memory_limit_of(spec, self.settings))
        ledger = self.ledger
        if ledger is not None:
            ledger.add(key, None, placement.cgroup)
        command = worker_command(self.settings, spec, shm_dir, self.base_env, placement)

        def spawned(pid: int) -> None:
            if ledger is not None:
                ledger.add(key, pid, placement.cgroup)

        client = AdapterClient(command.argv, str(command.cwd), command.env,
                               max_frame_bytes=self.settings.max_frame_bytes,
                               stderr_tail_lines=self.settings.stderr_tail_lines,
                               on_stderr_line=on_stderr_line, on_exit=on_exit, on_spawn=spawned)
        return LaunchedWorker(client, placement, key, ledger)

    def handshake(self, launched: LaunchedProcess) -> Handshake:
        """Spawn ``launched`` and confirm its algorithm loaded (see ``handshake``)."""
        if not isinstance(launched, LaunchedWorker):
            raise TypeError(f"this launcher did not make {launched!r}")
        hello, dialect, info = handshake(launched.client, self.settings)
        return Handshake(hello, dialect, info)

    def status(self, limit_mb: int) -> dict[str, Any]:
        """The containment in force for workers with ``limit_mb`` (what ``status`` shows)."""
        return {**self.report.to_dict(), "limit_mb": limit_mb,
                "enforced": limit_mb > 0 and self.report.mechanism != "none"}


def handshake(client: AdapterClient, settings: Settings, budget: Budget | None = None
              ) -> tuple[dict[str, Any], Dialect, dict[str, Any] | None]:
    """Spawn the process, exchange hellos and confirm the algorithm loaded (as its dialect proves it).

    Returns ``(hello, dialect, info)``; raises HandshakeFailed (the process is killed) otherwise.
    ``budget`` caps each wait by an outer deadline (the smoke test's); it may raise to end the wait.
    """
    def capped(seconds: float) -> float:
        return budget(seconds) if budget is not None else seconds

    try:
        hello = client.start(capped(settings.handshake_timeout_ms / 1000), protocol.make_runner_hello(
            runner_version, settings.heartbeat_interval_ms, settings.heartbeat_grace_ms))
        dialect = detect_dialect(hello)
        info = strategy_for(dialect).confirm_ready(client, hello, settings, capped)
    except WorkerFailure as exc:
        client.kill()
        if isinstance(exc, HandshakeFailed):
            raise
        raise HandshakeFailed(f"worker failed while starting: {exc.message}", exc.error_code,
                              exit_code=exc.exit_code if exc.exit_code is not None else client.wait(2.0),
                              stderr_tail=exc.stderr_tail or client.stderr_tail) from exc
    return dict(hello), dialect, info
