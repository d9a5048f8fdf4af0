"""``POST /execute?slot=...`` answered without FastAPI's routing and dependency machinery.

A frame-slot call carries no body and its image is already in shared memory, so what is left of its
cost is the HTTP stack; FastAPI's route matching and dependency solving were most of the event
loop's time per call. This middleware runs the very same handler (``routes.execute``'s slot path)
for such requests once the token is accepted. Anything it does not handle itself (a refused token,
a body, fields that do not validate) goes to the normal route, which answers exactly as for any
other request; it does so before any slot is touched, so nothing runs twice.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.errors import RunnerError

from .context import AppContext
from .problems import error_response, os_error_response, unexpected_response
from .routes.execute import ExecuteFields, execute_on_slot
from .streaming.timing import CallTiming

_SLOT_PARAM = b"slot="


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


class SlotCallMiddleware:
    """Serves slot calls to ``/execute`` directly; passes every other request on unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/execute"
                or _SLOT_PARAM not in scope.get("query_string", b"")):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        ctx = scope["app"].state.ctx
        assert isinstance(ctx, AppContext)
        slot_id = request.query_params.get("slot")
        if slot_id is None or not ctx.auth.accepts(request.headers.get("authorization")):
            await self.app(scope, receive, send)  # refused before any byte of the body is read
            return
        body = await request.body()  # the route reads it too (and refuses one that is not empty)
        replay = _replay([{"type": "http.request", "body": body, "more_body": False}], receive)
        if body:
            await self.app(scope, replay, send)
            return
        try:
            ExecuteFields.model_validate(dict(request.query_params))
        except ValidationError:
            await self.app(scope, replay, send)
            return
        # Errors are answered as the app's exception handlers answer them (problems.py).
        response: Response
        try:
            response = await execute_on_slot(Request(scope, replay), ctx, slot_id, CallTiming())
        except RunnerError as err:
            response = error_response(err)
        except OSError as exc:
            response = os_error_response(exc, "POST", "/execute")
        except Exception as exc:  # noqa: BLE001 - a bug: logged and answered like any route's
            response = unexpected_response(exc, "POST", "/execute")
        await response(scope, receive, send)
