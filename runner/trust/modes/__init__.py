"""Trust modes: what a failed signature check means. One module per mode; ``resolve`` picks one."""

from .base import TrustMode
from .resolve import resolve_mode

__all__ = ["TrustMode", "resolve_mode"]
