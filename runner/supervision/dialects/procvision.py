"""``procvision``: this project's SDK serving a phase-style algorithm.

Announces ``pv:`` capabilities; images go in POSIX shared memory segments. Its hello comes after the
algorithm loaded (``pv:import-before-hello:v1``); it keeps sessions between calls, so a call may
end one, and it reads ``step_desc`` / ``guide_info`` in phase calls too.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Dialect, ImageTransport
from .capabilities import IMPORT_BEFORE_HELLO_CAPABILITY
from .phases import PhaseDialect
from .requests import CallRequest


class ProcVisionDialect(PhaseDialect):
    """Our SDK, phase style."""

    dialect: ClassVar[Dialect] = Dialect.PROCVISION
    ours: ClassVar[bool] = True
    image_transport: ClassVar[ImageTransport] = ImageTransport.POSIX_SHM
    fetches_info_after_start: ClassVar[bool] = True

    def proves_load_by_hello(self, capabilities: list[str]) -> bool:
        return IMPORT_BEFORE_HELLO_CAPABILITY in capabilities

    def _extend(self, request: CallRequest, data: dict[str, Any]) -> None:
        # Our adapter keeps sessions alive between calls; this tells it to drop one.
        data["end_session"] = bool(request.end_session)
        if request.step_desc:
            data["step_desc"] = request.step_desc
        if request.guide_info:
            data["guide_info"] = list(request.guide_info)
