"""``BaseAlgorithm``: the class every ProcVision algorithm subclasses, in either authoring style.

See ``styles`` for the two styles (phase, execute-only) and how a class's style is found.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from . import styles
from .diagnostics import Diagnostics
from .logger import StructuredLogger
from .session import Session


class BaseAlgorithm(ABC):
    """Base of an algorithm served by the worker adapter.

    Two authoring styles (``styles``): the phase style implements ``get_info``, ``pre_execute`` and
    ``execute(step_index, pid, session, user_params, shared_mem_id, image_meta)``; the execute-only
    style implements only ``execute(step_index, step_desc, cur_image, guide_image, guide_info)`` and
    receives both images as arrays. The style is detected from ``execute``'s parameters, or declared
    with ``execution_style = "phase"`` / ``"execute-only"``; constructing a phase-style class that
    lacks ``get_info`` or ``pre_execute`` raises TypeError, as an abstract method would.

    Lifecycle: the adapter constructs the class once per worker process, calls ``setup()`` before
    it reports ready, then ``pre_execute``/``execute`` for each step (wrapped by ``on_step_start``
    and ``on_step_finish``), ``reset(session)`` when a session ends or is evicted, and
    ``teardown()`` exactly once when the worker stops.
    """

    #: ``"phase"``, ``"execute-only"`` or None (detected from ``execute``'s parameters).
    execution_style: ClassVar[str | None] = None

    def __new__(cls, *args: Any, **kwargs: Any) -> BaseAlgorithm:
        if not getattr(cls, "__abstractmethods__", None):
            style = styles.detect_style(cls, BaseAlgorithm)
            if style == styles.PHASE:
                missing = [name for name in ("get_info", "pre_execute")
                           if getattr(cls, name) is getattr(BaseAlgorithm, name)]
                if missing:
                    raise TypeError(f"Can't instantiate phase-style algorithm {cls.__name__} without "
                                    f"{' and '.join(missing)} (or write the execute-only style: "
                                    f"execute({', '.join(styles.EXECUTE_ONLY_PARAMS)}))")
        return super().__new__(cls)

    @classmethod
    def algorithm_style(cls) -> str:
        """This class's authoring style, ``"phase"`` or ``"execute-only"`` (StyleError if unclear)."""
        return styles.detect_style(cls, BaseAlgorithm)

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

    # --- phase style (required there; unused by execute-only algorithms) ----------------------------

    def get_info(self) -> dict[str, Any]:
        """``{name, version, description, supported_pids, steps}``; must agree with the manifest.

        Required in the phase style. Execute-only algorithms may leave it out: the adapter then
        answers ``info`` from ``manifest.json``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement get_info()")

    def pre_execute(
        self,
        step_index: int,
        pid: str,
        session: Session,
        user_params: dict[str, Any],
        shared_mem_id: str,
        image_meta: dict[str, Any],
    ) -> dict[str, Any]:
        """Prepare a step (for example calibration); returns ``{status, message, data}``. Phase style only."""
        raise NotImplementedError(f"{type(self).__name__} does not implement pre_execute()")

    # --- required -------------------------------------------------------------------------------

    @abstractmethod
    def execute(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Run a step; returns ``{status, message?, error_code?, data: {result_status, ...}}``.

        Phase style: ``execute(step_index, pid, session, user_params, shared_mem_id, image_meta)``.
        Execute-only style: ``execute(step_index, step_desc, cur_image, guide_image, guide_info)``
        with ``cur_image``/``guide_image`` as H x W x 3 uint8 RGB arrays.
        """
        ...
