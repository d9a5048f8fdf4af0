"""The tools that build a package's venv offline: one module per tool, ``selection`` picks one."""

from .base import PendingVenv, VenvTool
from .selection import choose_tool, find_uv

__all__ = ["PendingVenv", "VenvTool", "choose_tool", "find_uv"]
