"""What every part of a worker slot shares: its fields, views, log lines and events.

``Worker`` is assembled from this base, ``WorkerStartup`` (bringing a generation up) and
``WorkerCalls`` (running calls); the lifecycle itself (start, stop, recycle, what happens when a
generation ends) is in ``worker.py``. All mutable fields are guarded by ``_lock``.
"""

from __future__ import annotations

import shutil
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk.client import WorkerFailure
from procvision_algorithm_sdk.errors import ErrorCode
from runner.config import Settings

from .backoff import CrashLoop
from .dialects import BUSY_PONG_CAPABILITY, Dialect, ImageHandoff, capabilities_of
from .generation import Generation
from .image_size import ImageShape, LastImageSize
from .launcher import WorkerLauncher
from .logs import RotatingLineLog
from .restart_policy import RestartPolicy
from .spec import WorkerSpec
from .states import EventSink, State, StateMachine, SupervisorEvent


class WorkerBase(ABC):
    """The state of one worker slot: its current process generation and what it learned."""

    def __init__(self, spec: WorkerSpec, index: int, settings: Settings, log: RotatingLineLog,
                 shm_root: Path, launcher: WorkerLauncher, sink: EventSink,
                 claim_info: Callable[[], bool] | None = None, *,
                 restart_policy: RestartPolicy | None = None, image_size: LastImageSize | None = None) -> None:
        self.spec = spec
        self.index = index
        self.settings = settings
        self.log = log
        self.shm_root = shm_root
        self.launcher = launcher
        self._sink = sink
        # Says (once per pool start) that this worker should fetch get_info for the version.
        self._claim_info = claim_info
        self.machine = StateMachine(spec.name, spec.version, index, sink)
        self.restart_policy = restart_policy or RestartPolicy.from_settings(settings)
        self._lock = threading.RLock()
        self._gen: Generation | None = None  # the current (or last) process generation
        self._image_shape: ImageShape | None = None  # of the last image this slot's calls carried
        #: What the daemon's calls carry, seen by every worker: a new worker prepares segments of it.
        self.image_size = image_size if image_size is not None else LastImageSize()
        self._gen_count = 0
        # A start attempt whose process was recycled for a hung get_info continues in its restart.
        self._attempt_is_first = False
        self._carry_first = False
        self._run_stop = threading.Event()  # set by stop(): cancels pending restarts
        # Public workers answer no ping during a call: their heartbeat skips while this is held.
        self._call_gate = threading.Lock()
        self.dialect: Dialect | None = None
        self.hello: dict[str, Any] | None = None
        self.info: dict[str, Any] | None = None
        #: Why fetching get_info after start failed (not fatal), or None.
        self.info_error: dict[str, Any] | None = None
        self.started_at: float | None = None
        self.busy_request_id: str | None = None
        self.restart_at: float | None = None
        self.last_error: dict[str, Any] | None = None
        self.counters = {"calls": 0, "errors": 0, "timeouts": 0, "restarts": 0, "crashes": 0}
        # Set once the first start attempt after an explicit start() has finished, either way.
        self.first_attempt_done = threading.Event()
        self.first_failure: WorkerFailure | None = None

    # --- views ---------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def pid(self) -> int | None:
        gen = self._gen
        return gen.pid if gen is not None else None

    @property
    def generation(self) -> Generation | None:
        """The current (or last) process generation, None before the first start attempt."""
        return self._gen

    @property
    def handoff(self) -> ImageHandoff | None:
        """Where the current process takes its call images from (None until it is ready)."""
        gen = self._gen
        return gen.handoff if gen is not None else None

    @property
    def shm_dir(self) -> Path | None:
        """The current process's private folder (its PROC_SHM_DIR)."""
        gen = self._gen
        return gen.shm_dir if gen is not None else None

    @property
    def crash_loop(self) -> CrashLoop:
        """The failures counted toward the crash-loop limit."""
        return self.restart_policy.crash_loop

    @property
    def capabilities(self) -> list[str]:
        return capabilities_of(self.hello)

    @property
    def pongs_while_busy(self) -> bool:
        return BUSY_PONG_CAPABILITY in self.capabilities

    def status(self) -> dict[str, Any]:
        """JSON-able view of this worker."""
        return {"index": self.index, "pid": self.pid, "state": self.state.value,
                "restarts": self.counters["restarts"], "started_at": self.started_at,
                "busy_request_id": self.busy_request_id, "restart_at": self.restart_at}

    # --- shared helpers ------------------------------------------------------------------------

    def _event(self, kind: str, reason: str, **details: Any) -> None:
        self._sink(SupervisorEvent(kind, self.spec.name, self.spec.version, self.index, self.pid,
                                   self.state, self.state, reason, details))

    def _note(self, text: str) -> None:
        """One ``[runner]`` line in the version's worker.log."""
        self.log.write(text, f"[runner] [w{self.index}] ")

    def _free(self, gen: Generation) -> None:
        """Release what a generation holds: its process tree, image segments and folder."""
        if gen.launched is not None:
            gen.launched.end()  # whatever the worker started dies with it (process group, cgroup)
        if gen.handoff is not None:
            try:
                gen.handoff.close()  # frees images and spare segments, stops the handoff's thread
            except OSError as exc:
                self.log.write(f"could not free call images: {exc}", "[runner] ")
        if gen.shm_dir is not None:
            shutil.rmtree(gen.shm_dir, ignore_errors=True)

    @abstractmethod
    def _handle_failure(self, gen: Generation, message: str, code: str, exit_code: int | None,
                        stderr_tail: list[str], killed_by_runner: bool = False) -> None:
        """End a generation that died or was recycled; restart it or give up."""

    @abstractmethod
    def recycle(self, reason: str, code: ErrorCode, counts: bool = True) -> None:
        """Kill the current process on purpose; it restarts."""
