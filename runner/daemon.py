"""The daemon: one process serving the API, the drop-folder watcher and the worker supervisor.

Start: take the single-instance lock (a second daemon on the root exits with 2012), reconcile the
root (``installer.recover``), restart the workers of active versions (``router.resume``), then
serve. The API port is bound right after the lock, before any worker starts (a busy port fails
with 2016 port_in_use). Stop (SIGTERM/SIGINT): refuse new work (503, 1016), let running requests
finish within their own call deadlines, stop the watcher, wait for a running install (bounded),
stop every worker, release the lock.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from runner.api.app import create_app
from runner.api.auth import check_exposure, resolve_token
from runner.api.context import AppContext
from runner.api.drain import Drain
from runner.api.routes.slots import close_frame_slots
from runner.api.streaming.socket_to_memory import DirectBodyHttpProtocol
from runner.config import Settings
from runner.errors import PackageErrorCode, RunnerError
from runner.fastpath.uds import bind_unix, close_unix
from runner.package.installer import InstallResult
from runner.package.watcher import DropFolderWatcher
from runner.service import RunnerService
from runner.service_notify import ServiceNotifier, WatchdogPinger
from runner.store.locks import DaemonLock
from runner.supervision.sandbox import announce as announce_sandbox

_log = logging.getLogger("runner.daemon")
#: Longest wait for a running install at shutdown; an interrupted install is cleaned by recover().
INSTALL_DRAIN_S = 60.0
#: How long a stopping daemon waits for its start-up background work (the trust verifier's import,
#: the install warm-up) to end. A thread still importing when the interpreter finalizes can abort
#: the process (SIGABRT, seen under load when a daemon stopped right after it started); the work
#: takes seconds at most.
WARM_UP_JOIN_S = 60.0


class _Server(uvicorn.Server):
    """uvicorn's server with a drain phase: the first SIGTERM/SIGINT refuses new work and waits until
    the running requests finished (or their deadline passed) before uvicorn closes the connections.
    A second signal stops at once (a second SIGINT also skips uvicorn's own wait)."""

    def __init__(self, config: uvicorn.Config, drain: Drain, on_started: Callable[[_Server], None],
                 on_stopping: Callable[[], None], on_tick: Callable[[], object] | None = None) -> None:
        super().__init__(config)
        self._drain = drain
        self._on_started = on_started
        self._on_stopping = on_stopping
        self._on_tick = on_tick

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started(self)

    def begin_drain(self) -> None:
        """Refuse new work from now on; the main loop exits once the drain settled."""
        if not self._drain.draining:
            self._on_stopping()
            self._drain.begin()
            _log.info("draining: %d request(s) in flight", self._drain.in_flight)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Replaces uvicorn's handler while it serves: a handler only sets flags; on_tick acts on them.
        if self._drain.draining:
            _log.info("received %s again, stopping without waiting", signal.Signals(sig).name)
            self.should_exit = True
            if sig == signal.SIGINT:
                self.force_exit = True
            return
        _log.info("received %s, shutting down", signal.Signals(sig).name)
        self.begin_drain()

    async def on_tick(self, counter: int) -> bool:
        if self._on_tick is not None:
            self._on_tick()  # the watchdog: pings only while this loop turns
        if self._drain.draining and not self.should_exit and self._drain.settled():
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_stopping()
        await super().shutdown(sockets)

    def bound_port(self) -> int | None:
        for server in self.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return None


def bind_port(host: str, port: int) -> socket.socket:
    """Bind the API socket now (before any worker starts) so a busy port fails fast and clearly.

    RunnerError PORT_IN_USE (2016) if another process holds it; INVALID_REQUEST if the host is wrong.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise RunnerError(PackageErrorCode.INVALID_REQUEST, f"cannot bind to host {host!r}: {exc}; fix --host",
                          host=host, port=port) from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: a port in TIME_WAIT after a restart is not "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise RunnerError(PackageErrorCode.PORT_IN_USE,
                              f"port {port} on {host} is in use: stop the other process or pass --port",
                              host=host, port=port) from exc
        raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                          f"cannot bind {host}:{port}: {exc.strerror or exc}; fix --host/--port",
                          host=host, port=port) from exc
    sock.set_inheritable(True)
    return sock


def configure_logging(settings: Settings) -> None:
    """Runner logs go to stderr at ``settings.log_level`` (systemd's journal picks them up)."""
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class Daemon:
    """One daemon on one root. ``run`` blocks until a signal or ``request_stop``; returns an exit code.

    ``before_serve(service)`` runs after the workers of active versions are up and before the API
    listens (``quickstart`` installs and activates the example there). ``on_listening(url)`` runs
    once the socket accepts connections.
    """

    def __init__(self, settings: Settings, *, before_serve: Callable[[RunnerService], None] | None = None,
                 on_listening: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.before_serve = before_serve
        self.on_listening = on_listening
        self.url: str | None = None
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._extra_sockets: list[socket.socket] = []  # the --uds socket, served with the TCP one
        self._ctx: AppContext | None = None
        self._warm_ups: list[threading.Thread] = []  # Installer.warm_up's background threads
        self.notifier = ServiceNotifier(settings.notify_socket)

    def request_stop(self) -> None:
        """Ask a running daemon to shut down (what SIGTERM does): drain, then stop."""
        self._stop.set()
        if self._server is not None:
            self._server.begin_drain()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only record: the main loop does the work (a handler must not block or take locks).
        _log.info("received %s, shutting down", signal.Signals(signum).name)
        self.request_stop()

    def run(self) -> int:
        """Serve until stopped. RunnerError ALREADY_RUNNING (2012) if another daemon holds the root."""
        settings = self.settings
        check_exposure(settings)
        layout = settings.layout
        # The port first: a daemon that cannot listen exits before it creates anything under the root.
        sock = bind_port(settings.host, settings.port)
        lock = DaemonLock(layout)
        try:
            layout.ensure()
            lock.acquire()
        except BaseException:
            sock.close()
            raise
        try:
            resolve_token(settings)  # a token file others can read refuses the start before anything runs
            unix = bind_unix(settings.uds_path) if settings.uds_path is not None else None
        except RunnerError:
            sock.close()
            lock.release()
            raise
        self._extra_sockets = [unix] if unix is not None else []
        in_main = threading.current_thread() is threading.main_thread()
        previous: dict[int, Any] = {}
        if in_main:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            shutil.rmtree(layout.uploads, ignore_errors=True)  # leftovers of a crash
            service = RunnerService.create(settings)
            announce_sandbox(settings, _log)  # loudly, when workers would run unboxed
            try:
                self._serve(service, sock)
            finally:
                _log.info("stopping workers")
                service.close()
                self._join_warm_up()
        finally:
            sock.close()
            if unix is not None and settings.uds_path is not None:
                close_unix(unix, settings.uds_path)
            lock.release()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        _log.info("daemon stopped")
        return 0

    def _serve(self, service: RunnerService, sock: socket.socket) -> None:
        settings = self.settings
        service.start()
        self._warm_ups = service.installer.warm_up()
        if self.before_serve is not None and not self._stop.is_set():
            self.before_serve(service)
        if self._stop.is_set():
            return
        app = create_app(service, settings, token=resolve_token(settings))
        ctx = app.state.ctx
        assert isinstance(ctx, AppContext)
        self._ctx = ctx
        watcher = self._start_watcher(service)
        try:
            config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                                    access_log=settings.log_level == "debug", lifespan="off",
                                    # Named, not "auto": both are dependencies, and a silent fallback
                                    # to h11 / the asyncio loop makes a 7 MB upload several times
                                    # slower (benchmarks/http_execute.py; issue 15). The protocol is
                                    # uvicorn's httptools one, able to receive a raw image straight
                                    # into shared memory (api/streaming/socket_to_memory.py).
                                    http=DirectBodyHttpProtocol if settings.upload_socket_to_memory else "httptools",
                                    loop="uvloop",
                                    timeout_keep_alive=settings.http_keep_alive_s,
                                    # Running calls were drained before (see _Server); this only
                                    # bounds writing their answers and closing idle connections.
                                    timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_s)))
            server = _Server(config, ctx.drain, self._started, self._stopping_hook(ctx),
                             on_tick=self._watchdog(ctx).tick)
            self._server = server
            if self._stop.is_set():
                return
            server.run(sockets=[sock, *self._extra_sockets])
        finally:
            ctx.stopping.set()
            close_frame_slots(app)
            ctx.call_threads.close()
            if watcher is not None:
                watcher.stop()
            if not ctx.operations.close(INSTALL_DRAIN_S):
                _log.warning("an install was still running after %.0f s; it is abandoned and cleaned at "
                             "next start", INSTALL_DRAIN_S)

    def _join_warm_up(self) -> None:
        warm_ups, self._warm_ups = self._warm_ups, []
        deadline = time.monotonic() + WARM_UP_JOIN_S
        for thread in warm_ups:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                _log.warning("start-up work %r was still running after %.0f s at shutdown", thread.name,
                             WARM_UP_JOIN_S)

    def _started(self, server: _Server) -> None:
        port = server.bound_port() or self.settings.port
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        self.listening.set()
        _log.info("listening on %s", self.url)
        if self.on_listening is not None:
            self.on_listening(self.url)
        # The workers of the active versions started before uvicorn did (service.start()).
        self.notifier.ready(f"serving {self.url}")
        if self._stop.is_set():
            server.begin_drain()

    def _stopping_hook(self, ctx: AppContext) -> Callable[[], None]:
        """What runs when the drain begins (and again at shutdown): refuse work, tell systemd once."""
        told = threading.Event()

        def stopping() -> None:
            ctx.stopping.set()
            if not told.is_set():
                told.set()
                self.notifier.stopping("draining")

        return stopping

    def _watchdog(self, ctx: AppContext) -> WatchdogPinger:
        settings = self.settings
        usec = settings.watchdog_usec
        if settings.watchdog_pid is not None and settings.watchdog_pid != os.getpid():
            usec = None  # the watchdog is meant for another process (e.g. a wrapper that did not exec)
        return WatchdogPinger(self.notifier, usec, healthy=lambda: not ctx.drain.draining)

    def _start_watcher(self, service: RunnerService) -> Any:
        if not self.settings.watch_drop_folder:
            return None

        def on_result(zip_path: Path, result: InstallResult | RunnerError) -> None:
            if isinstance(result, RunnerError):
                outcome = "failed"
            else:
                outcome = "idempotent" if result.idempotent else "succeeded"
            service.metrics.record_install(outcome, "drop-folder")

        watcher = DropFolderWatcher(self.settings, service.installer, on_result=on_result)
        watcher.start()
        return watcher


def serve(settings: Settings, **hooks: Any) -> int:
    """Run a daemon for ``settings`` in this thread (the CLI's ``serve``)."""
    configure_logging(settings)
    return Daemon(settings, **hooks).run()
