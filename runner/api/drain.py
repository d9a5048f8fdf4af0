"""Graceful shutdown of the API: refuse new work, let running requests finish, answer every request.

``Drain`` counts the HTTP requests in flight and the latest deadline a running call announced.
``DrainMiddleware`` refuses new calls once draining (503 problem, 1016) and, when the server has to
cut a request off anyway, still answers it with a problem document instead of a plain-text 500.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from procvision_algorithm_sdk.errors import ErrorCode

from .problems import problem_dict, problem_response

_log = logging.getLogger("runner.api")
#: Requests that start new work; refused (503, 1016) once the daemon drains.
_REFUSED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Drain:
    """In-flight requests and the deadline a shutdown has to wait for."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._in_flight = 0
        self._latest_deadline = 0.0
        self._began: float | None = None

    @property
    def draining(self) -> bool:
        return self._began is not None

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def begin(self) -> None:
        """Start draining (idempotent): new work is refused from now on."""
        with self._lock:
            if self._began is None:
                self._began = time.monotonic()

    def expect(self, seconds: float) -> None:
        """A running call may take up to ``seconds`` more; a drain waits at least that long for it."""
        with self._lock:
            self._latest_deadline = max(self._latest_deadline, time.monotonic() + seconds)

    def deadline(self) -> float | None:
        """When a drain stops waiting (monotonic): the latest announced call deadline, at least the
        grace after the drain began, plus the grace for the answer to be written. None if not draining."""
        with self._lock:
            if self._began is None:
                return None
            return max(self._latest_deadline, self._began + self.grace_s) + self.grace_s

    def settled(self) -> bool:
        """True when draining and nothing runs any more, or the drain deadline passed."""
        deadline = self.deadline()
        if deadline is None:
            return False
        if self.in_flight == 0:
            return True
        if time.monotonic() >= deadline:
            _log.warning("%d request(s) still running at the drain deadline; they are cut off", self.in_flight)
            return True
        return False

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def shutting_down_problem(message: str) -> dict[str, Any]:
    """The 503 problem of a request the shutdown refused or cut off."""
    return problem_dict(ErrorCode.WORKER_UNAVAILABLE.value, message, {"reason": "daemon is shutting down"}, status=503)


class DrainMiddleware:
    """ASGI middleware: counts requests, refuses new work while draining, answers cut-off requests."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.drain.draining and scope.get("method") in _REFUSED_METHODS:
            response = problem_response(shutting_down_problem(
                "daemon is shutting down: it takes no new work; retry once it is back"),
                headers={"Retry-After": "5", "Connection": "close"})
            await response(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        self.drain.enter()
        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            # The server's graceful-shutdown timeout cancelled this request: still answer it properly.
            if not started:
                response = problem_response(shutting_down_problem(
                    "daemon is shutting down: this request was cut off before it finished; retry it"),
                    headers={"Connection": "close"})
                try:
                    await response(scope, receive, send)
                except (OSError, RuntimeError) as exc:
                    _log.info("could not answer a cut-off request: %s", exc)
            raise
        finally:
            self.drain.leave()
