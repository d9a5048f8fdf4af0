"""Start-up work that makes a station's first install as fast as the ones after it.

The first install on a fresh root pays for facts the runner learns once and keeps:

* the probe of the interpreter venvs are built from (``InterpreterFinder`` caches it; ~25 ms);
* the venv tool's own caches: uv asks an interpreter about itself once per cache (~70 ms of the
  first ``uv venv``), virtualenv seeds its app data once.

(The sandbox's probes are already run by the daemon as it starts, when it announces the sandbox.)

The daemon runs ``warm_up_installs`` in a background thread as it starts. No install waits for it:
one that comes first does the same work itself (both steps are cached and safe to run twice at
once), and a step that fails here is only logged, since the install that needs it will report it
with its own error code. A stopping daemon waits for the thread, which its deadline bounds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ..config import Settings
from ..errors import RunnerError
from ..store.layout import ROOT_MODE
from . import venv
from .interpreters import InterpreterFinder
from .publish import remove_tree
from .venvtools import choose_tool

log = logging.getLogger(__name__)

#: The deadline of the throwaway venv: well under the daemon's wait for start-up work at shutdown
#: (``daemon.WARM_UP_JOIN_S``), so a hung tool cannot outlive the daemon's stop.
WARM_UP_TIMEOUT_S = 30.0


def warm_up_installs(settings: Settings, finder: InterpreterFinder, locate_uv: Callable[[], Path | None]) -> float:
    """Learn what the first install would otherwise learn (see the module docstring); returns the
    seconds it took. Never raises for a step that fails: that step is logged and skipped."""
    started = time.monotonic()
    try:
        interpreter = finder.choose()
    except RunnerError as exc:
        log.info("install warm-up: no interpreter to prepare (%s)", exc.message)
        interpreter = None
    if interpreter is not None:
        scratch = settings.layout.warm_up / uuid.uuid4().hex
        try:
            scratch.parent.mkdir(mode=ROOT_MODE, parents=True, exist_ok=True)
            tool = choose_tool(settings, venv.tool_environment(settings), locate_uv)
            tool.warm_up(interpreter.path, scratch, WARM_UP_TIMEOUT_S)
        except RunnerError as exc:
            log.info("install warm-up: the venv tool could not be prepared (%s)", exc.message)
        except OSError as exc:
            log.info("install warm-up: the venv tool could not be prepared (%s)", exc)
        finally:
            remove_tree(scratch)
            with contextlib.suppress(OSError):  # another warm-up's venv is still in there
                settings.layout.warm_up.rmdir()
    return time.monotonic() - started


def start_warm_up(settings: Settings, finder: InterpreterFinder,
                  locate_uv: Callable[[], Path | None]) -> threading.Thread:
    """``warm_up_installs`` in a daemon thread (joined at shutdown by whoever started it)."""

    def run() -> None:
        seconds = warm_up_installs(settings, finder, locate_uv)
        log.debug("install warm-up done in %.0f ms", seconds * 1000)

    thread = threading.Thread(target=run, name="install-warm-up", daemon=True)
    thread.start()
    return thread
