"""Which tool builds the venvs: the ``installer`` setting; auto = uv if its binary ships with the runner."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from ...config import Settings
from ...errors import PackageErrorCode, RunnerError
from .base import VenvTool
from .pip import PipTool
from .uv import UvTool


def find_uv() -> Path | None:
    """The uv binary of the ``uv`` package installed next to the runner, or None."""
    try:
        import uv
    except ImportError:
        return None
    try:
        return Path(uv.find_uv_bin())
    except FileNotFoundError:
        return None


def choose_tool(settings: Settings, env: Mapping[str, str],
                locate_uv: Callable[[], Path | None] = find_uv) -> VenvTool:
    """The tool for this install; 2005 if ``installer`` is "uv" and uv is missing."""
    if settings.installer == "pip":
        return PipTool(settings, env)
    uv_bin = locate_uv()
    if uv_bin is None:
        if settings.installer == "uv":
            raise RunnerError(PackageErrorCode.INSTALL_FAILED,
                              "installer is set to 'uv' but uv is not installed next to the runner; install it "
                              "or set installer to 'auto' or 'pip'")
        return PipTool(settings, env)
    return UvTool(settings, env, uv_bin)
