"""``public-phase``: the public SDK 0.0.6/0.0.7 (phases info/pre/execute).

Reads images from files ``<PROC_SHM_DIR>/<id>.npy`` (array) or ``<id>.bin`` (encoded bytes). Its hello
comes before the algorithm is imported, so readiness is proven by an ``info`` call (0.0.7) or a ping.
"""

from __future__ import annotations

from typing import ClassVar

from .base import Dialect, ImageTransport
from .phases import PhaseDialect


class PublicPhaseDialect(PhaseDialect):
    """The public SDK, phase era."""

    dialect: ClassVar[Dialect] = Dialect.PUBLIC_PHASE
    ours: ClassVar[bool] = False
    image_transport: ClassVar[ImageTransport] = ImageTransport.FILES
