"""The objects every route shares, stored on ``app.state.ctx``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request

from runner.config import Settings
from runner.console.call_log import CallLog
from runner.service import RunnerService

from .auth import BearerAuth
from .call_threads import CallThreads
from .drain import Drain
from .operations import OperationManager


@dataclass
class AppContext:
    """What routes need: the service facade, settings, the operations queue, auth, a stop flag."""

    service: RunnerService
    settings: Settings
    operations: OperationManager
    auth: BearerAuth
    #: Set when the daemon shuts down: log streams end, new installs are refused.
    stopping: threading.Event
    #: Requests in flight and the deadlines a graceful shutdown waits for.
    drain: Drain
    #: Recent calls and health series for the console (None: console disabled).
    calls: CallLog | None = None
    #: The threads execute calls block on while their worker runs.
    call_threads: CallThreads = field(default_factory=CallThreads)


def get_ctx(request: Request) -> AppContext:
    """FastAPI dependency: the app's context."""
    ctx = request.app.state.ctx
    assert isinstance(ctx, AppContext)
    return ctx
