"""The phase call shape (``info`` / ``pre`` / ``execute``), shared by the dialects that use it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .base import DialectStrategy
from .requests import CallRequest, ImageInput

if TYPE_CHECKING:
    from .handoff import ImageHandoff


class PhaseDialect(DialectStrategy):
    """One call per phase, one image, sessions named by id."""

    execute_only: ClassVar[bool] = False
    smoke_phases: ClassVar[tuple[str, ...]] = ("info", "pre", "execute")

    def _call_data(self, request: CallRequest, handoff: ImageHandoff) -> dict[str, Any]:
        data: dict[str, Any] = {"phase": request.phase, "step_index": int(request.step_index),
                                "pid": request.pid, "user_params": dict(request.user_params)}
        if request.session_id is not None or request.session_context:
            data["session"] = {"id": request.session_id or "", "context": dict(request.session_context)}
        if request.image is not None:
            shm_id, meta = handoff.put(request.image)
            data["shared_mem_id"] = shm_id
            data["image_meta"] = meta
        else:
            data["shared_mem_id"] = ""
            data["image_meta"] = {}
        self._extend(request, data)
        return data

    def _extend(self, request: CallRequest, data: dict[str, Any]) -> None:
        """Add what only this dialect's workers read (nothing by default)."""

    def smoke_request(self, phase: str, step_index: int, pid: str, session: str,
                      images: tuple[np.ndarray, np.ndarray]) -> CallRequest:
        if phase == "info":
            return CallRequest(phase="info")
        return CallRequest(phase=phase, step_index=step_index, pid=pid, session_id=session,
                           image=ImageInput(array=images[0]), end_session=phase == "execute")
