"""``BaseAlgorithm``: the class every ProcVision algorithm subclasses (phase-era API)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from .diagnostics import Diagnostics
from .logger import StructuredLogger
from .session import Session


class BaseAlgorithm(ABC):
    """Base of an algorithm served by the worker adapter.

    Lifecycle: the adapter constructs the class once per worker process, calls ``setup()`` before
    it reports ready, then ``pre_execute``/``execute`` for each step (wrapped by ``on_step_start``
    and ``on_step_finish``), ``reset(session)`` when a session ends or is evicted, and
    ``teardown()`` exactly once when the worker stops.
    """

    def __init__(self) -> None:
        self.logger = StructuredLogger()
        self.diagnostics = Diagnostics()
        self._resources_loaded: bool = False
        self._model_version: str | None = None
        self._supported_pids: list[str] = []

    # --- optional hooks -------------------------------------------------------------------------

    def setup(self) -> None:
        """Load models and other heavy resources (called once, before the worker is ready)."""
        return None

    def teardown(self) -> None:
        """Release resources (called once when the worker stops)."""
        return None

    def on_step_start(self, step_index: int, session: Session, context: dict[str, Any]) -> None:
        """Called before ``pre_execute``/``execute``; ``context`` has ``pid``, ``phase``, ``trace_id``."""
        return None

    def on_step_finish(self, step_index: int, session: Session, result: dict[str, Any]) -> None:
        """Called after ``pre_execute``/``execute`` returned ``result``."""
        return None

    def reset(self, session: Session) -> None:
        """Called when ``session`` ends or is evicted; drop anything kept for it."""
        return None

    # --- required -------------------------------------------------------------------------------

    @abstractmethod
    def get_info(self) -> dict[str, Any]:
        """``{name, version, description, supported_pids, steps}``; must agree with the manifest."""
        ...

    @abstractmethod
    def pre_execute(
        self,
        step_index: int,
        pid: str,
        session: Session,
        user_params: dict[str, Any],
        shared_mem_id: str,
        image_meta: dict[str, Any],
    ) -> dict[str, Any]:
        """Prepare a step (for example calibration); returns ``{status, message, data}``."""
        ...

    @abstractmethod
    def execute(
        self,
        step_index: int,
        pid: str,
        session: Session,
        user_params: dict[str, Any],
        shared_mem_id: str,
        image_meta: dict[str, Any],
    ) -> dict[str, Any]:
        """Run a step; returns ``{status, message?, error_code?, data: {result_status, ...}}``."""
        ...
