"""``POST /execute`` answered without FastAPI's routing and dependency machinery.

An execute call is the hot path: its image streams into shared memory and the worker does the
rest, so FastAPI's route matching and dependency solving were most of the event loop's own time per
call (measured per thread: 1.7 of 2.5 ms for a frame-slot call). This middleware runs the very same
handlers (``routes.execute``) for ``POST /execute`` once the bearer token is accepted, and renders
their errors with the same functions as the app's exception handlers (``problems.py``). A refused
token, and a slot call that does not validate, go to the normal route, which answers exactly as for
any other request; both happen before any byte of an image is read or any slot is touched.
"""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.errors import RunnerError

from .context import AppContext
from .problems import error_response, os_error_response, unexpected_response, validation_response
from .routes.execute import ExecuteFields, execute, execute_on_slot
from .streaming.timing import CallTiming

_PATH = "/execute"


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


class ExecuteCallMiddleware:
    """Serves ``POST /execute`` directly; passes every other request on unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != _PATH:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        ctx = scope["app"].state.ctx
        assert isinstance(ctx, AppContext)
        if not ctx.auth.accepts(request.headers.get("authorization")):
            await self.app(scope, receive, send)  # refused before any byte of the body is read
            return
        slot_id = request.query_params.get("slot")
        fields: ExecuteFields | None = None
        if slot_id is not None:
            body = await request.body()
            if not body:
                try:
                    # Validated once here: the handler takes these fields as they are.
                    fields = ExecuteFields.model_validate(dict(request.query_params))
                except ValidationError:
                    receive = _replay([{"type": "http.request", "body": body, "more_body": False}], receive)
                    await self.app(scope, receive, send)
                    return
        response: Response
        try:
            if slot_id is not None:
                response = await execute_on_slot(request, ctx, slot_id, CallTiming(), fields)
            else:
                response = await execute(request, ctx)
        except ClientDisconnect:
            return  # nobody to answer; the handler already gave the body's memory back
        except RunnerError as err:
            response = error_response(err)
        except RequestValidationError as exc:
            response = validation_response(exc)
        except OSError as exc:
            response = os_error_response(exc, "POST", _PATH)
        except Exception as exc:  # noqa: BLE001 - a bug: logged and answered like any route's
            response = unexpected_response(exc, "POST", _PATH)
        await response(scope, receive, send)
