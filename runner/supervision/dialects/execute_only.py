"""The execute-only call shape (the public SDK 0.3.x style), shared by the dialects that use it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from procvision_algorithm_sdk.errors import ErrorCode
from runner.errors import PackageErrorCode, RunnerError

from .base import DialectStrategy
from .requests import CallRequest, ImageInput, invalid

if TYPE_CHECKING:
    from .handoff import ImageHandoff


class ExecuteOnlyDialect(DialectStrategy):
    """One ``execute`` per call with a current and a guide image; no ``pre`` phase."""

    execute_only: ClassVar[bool] = True
    checks_info_on_activation: ClassVar[bool] = False
    smoke_phases: ClassVar[tuple[str, ...]] = ("execute",)
    #: The worker answers ``info`` calls too (our adapter does, from get_info or the manifest).
    answers_info: ClassVar[bool] = False

    def _call_data(self, request: CallRequest, handoff: ImageHandoff) -> dict[str, Any]:
        if request.phase == "info" and self.answers_info:
            return {"phase": "info", "step_index": 0}
        if request.phase != "execute":
            raise invalid(f"this algorithm is written in the execute-only style (public SDK 0.3.x), which has no "
                          f"{request.phase!r} phase; send only 'execute' calls to it", phase=request.phase)
        if request.image is None or request.guide_image is None:
            raise invalid("execute-only algorithms (the public SDK 0.3.x style) need both the current image and a "
                          "guide image in every execute call")
        cur_id, cur_meta = handoff.put(request.image)
        guide_id, guide_meta = handoff.put(request.guide_image)
        return {"step_index": int(request.step_index), "step_desc": request.step_desc,
                "guide_info": list(request.guide_info), "cur_image_shm_id": cur_id, "cur_image_meta": cur_meta,
                "guide_image_shm_id": guide_id, "guide_image_meta": guide_meta}

    def check_request(self, name: str, version: str, request: CallRequest) -> None:
        if request.phase == "pre":
            raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                              f"{name} {version} is an execute-only worker (public SDK 0.3.x style): "
                              "it has no 'pre' phase; send phase=execute with the image and guide_image",
                              name=name, version=version, phase="pre")
        if request.guide_image is None:
            raise RunnerError(ErrorCode.INVALID_PARAMS,
                              f"{name} {version} is an execute-only worker (public SDK 0.3.x style): it needs the "
                              "guide image too; send it as the multipart file 'guide_image'",
                              name=name, version=version, field="guide_image")

    def smoke_request(self, phase: str, step_index: int, pid: str, session: str,
                      images: tuple[np.ndarray, np.ndarray]) -> CallRequest:
        return CallRequest(phase="execute", step_index=step_index, pid=pid, image=ImageInput(array=images[0]),
                           guide_image=ImageInput(array=images[1]), step_desc="smoke test")
