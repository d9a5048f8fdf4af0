"""``public-execute-only``: the public SDK 0.3.x (announces ``execute``).

One ``execute`` per call with a current and a guide image, read from files as in the phase era.
"""

from __future__ import annotations

from typing import ClassVar

from .base import Dialect, ImageTransport
from .execute_only import ExecuteOnlyDialect


class PublicExecuteOnlyDialect(ExecuteOnlyDialect):
    """The public SDK, execute-only era."""

    dialect: ClassVar[Dialect] = Dialect.PUBLIC_EXECUTE_ONLY
    ours: ClassVar[bool] = False
    image_transport: ClassVar[ImageTransport] = ImageTransport.FILES
