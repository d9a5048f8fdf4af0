"""The FastAPI application: routers, auth, problem handlers, and the objects routes share."""

from __future__ import annotations

import threading

from fastapi import Depends, FastAPI

import runner
from runner.config import Settings
from runner.console.call_log import CallLog
from runner.console.cookie_auth import CookieAuth
from runner.console.routes import mount_console
from runner.console.sessions import SessionStore
from runner.service import RunnerService
from runner.store.journal import OperationsJournal

from .auth import BearerAuth, resolve_token
from .context import AppContext
from .docs import mount_docs
from .drain import Drain, DrainMiddleware
from .execute_calls import ExecuteCallMiddleware
from .limits import BodyLimitMiddleware, BodyLimits
from .operations import Operation, OperationManager
from .problems import install_handlers
from .routes import algorithms, execute, health, logs, operations, slots, trust


def create_app(service: RunnerService, settings: Settings, token: str | None = None,
               operations_manager: OperationManager | None = None) -> FastAPI:
    """Build the API for ``service``.

    The token is ``token`` if given, else resolved from settings (generated into ``<root>/.token`` on
    first use); with ``settings.auth_enabled`` false no route checks it.
    """
    if token is None:
        token = resolve_token(settings)
    elif not settings.auth_enabled:
        token = None
    console = settings.console_enabled
    sessions = SessionStore(settings.console_sessions_max, settings.console_session_ttl_s)
    auth = BearerAuth(token, CookieAuth(sessions) if console else None)

    def record_install(op: Operation) -> None:
        if op.kind != "install":
            return
        outcome = op.state
        if op.state == "succeeded" and (op.result or {}).get("idempotent"):
            outcome = "idempotent"
        service.metrics.record_install(outcome, "api")

    manager = operations_manager or OperationManager(
        on_finished=record_install, journal=OperationsJournal(settings.layout.operations_file))
    app = FastAPI(title="ProcVision Runner", version=getattr(runner, "__version__", "1.0.0"),
                  description="Management and execution API of the ProcVision runner daemon.",
                  docs_url=None, redoc_url=None, openapi_url=None)
    drain = Drain(settings.shutdown_grace_s)
    calls = CallLog(settings.console_recent_calls, settings.console_thumbnail_width,
                    settings.console_health_window_s, settings.console_thumbnails_per_s) if console else None
    app.state.ctx = AppContext(service, settings, manager, auth, threading.Event(), drain, calls)
    # Innermost (added first): execute calls still pass the body limits and the drain.
    app.add_middleware(ExecuteCallMiddleware)
    app.add_middleware(DrainMiddleware, drain=drain)
    app.add_middleware(BodyLimitMiddleware, limits=BodyLimits.from_settings(settings))
    install_handlers(app)
    protected = [Depends(auth)]
    app.include_router(health.public)
    app.include_router(health.router, dependencies=protected)
    app.include_router(algorithms.router, dependencies=protected)
    app.include_router(operations.router, dependencies=protected)
    app.include_router(execute.router, dependencies=protected)
    app.include_router(slots.router, dependencies=protected)
    app.include_router(logs.router, dependencies=protected)
    app.include_router(trust.router, dependencies=protected)
    # The spec and its browser view hold no data: public, so a browser opens them (docs.py).
    mount_docs(app, "ProcVision Runner API")
    if console:  # the operator's page at / (runner/console)
        mount_console(app, protected)
    return app
