"""``procvision-execute-only``: this project's SDK serving an algorithm written in the execute-only
style (announces ``execute`` and ``pv:`` capabilities).

Calls take the 0.3.x shape (current + guide image, ``step_desc``, ``guide_info``); both images go in
POSIX shared memory segments. Our adapter answers ``info`` for these algorithms too.
"""

from __future__ import annotations

from typing import ClassVar

from .base import Dialect, ImageTransport
from .capabilities import IMPORT_BEFORE_HELLO_CAPABILITY
from .execute_only import ExecuteOnlyDialect


class ProcVisionExecuteOnlyDialect(ExecuteOnlyDialect):
    """Our SDK, execute-only style."""

    dialect: ClassVar[Dialect] = Dialect.PROCVISION_EXECUTE_ONLY
    ours: ClassVar[bool] = True
    image_transport: ClassVar[ImageTransport] = ImageTransport.POSIX_SHM
    answers_info: ClassVar[bool] = True

    def proves_load_by_hello(self, capabilities: list[str]) -> bool:
        return IMPORT_BEFORE_HELLO_CAPABILITY in capabilities
