"""Request-body limits, enforced while the body streams in, before any route buffers it.

Every request gets a byte cap chosen from its route and content type (see ``BodyLimits.cap_for``):

* zip uploads (``/algorithms/install``, ``/algorithms/validate`` with a non-JSON body): ``max_zip_bytes``
  plus room for multipart framing; ``uploads.receive_zip`` enforces the exact limit on the file;
* ``/execute`` as multipart: two images of ``max_image_bytes`` plus ``max_json_body_bytes`` of fields;
* everything else: ``max_json_body_bytes``. These small bodies are read here, checked for nesting
  depth when they are JSON (``max_json_depth``) and handed to the app from memory.

A declared ``Content-Length`` over the cap is refused before a byte is read; a chunked body is cut
as soon as it passes the cap. Either way the answer is 413 problem+json (2014). The connection stays
usable: uvicorn discards the rest of a refused body and then reads the next request.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from procvision_algorithm_sdk.errors import ErrorCode
from runner.config import Settings
from runner.errors import PackageErrorCode, RunnerError

from .problems import error_response

#: Room for multipart boundaries and part headers around an uploaded file.
MULTIPART_SLACK = 64 * 1024
_ZIP_ROUTES = frozenset({"/algorithms/install", "/algorithms/validate"})
_EXECUTE_ROUTE = "/execute"
_RAW_IMAGE_TYPES = frozenset({"application/x-npy", "application/npy", "application/octet-stream"})
# A JSON string (escapes included); removing strings leaves only structure to count brackets in.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(raw: bytes | str, stop_after: int) -> int:
    """Nesting depth of the JSON text ``raw``, counted without parsing (no recursion).

    Counting stops once the depth passes ``stop_after``, so a hostile body costs one linear scan.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    depth = deepest = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub(b"", data)):
        if match.group() in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_after:
                    break
        elif depth > 0:
            depth -= 1
    return deepest


def loads_limited(raw: bytes | str, max_depth: int, error: RunnerError) -> Any:
    """``json.loads`` that refuses JSON nested deeper than ``max_depth`` with ``error``.

    ``error`` gets ``max_json_depth`` in its details; invalid JSON raises ``ValueError`` as usual.
    """
    if json_depth(raw, max_depth) > max_depth:
        error.details.setdefault("max_json_depth", max_depth)
        raise error
    try:
        return json.loads(raw)
    except RecursionError as exc:  # the scanner and the parser should agree; never let this be a 500
        error.details.setdefault("max_json_depth", max_depth)
        raise error from exc


def too_deep(where: str, max_depth: int, code: PackageErrorCode | ErrorCode = PackageErrorCode.INVALID_REQUEST,
             **details: Any) -> RunnerError:
    """The error for JSON nested deeper than ``max_depth``."""
    return RunnerError(code, f"{where} is nested deeper than max_json_depth={max_depth}; send flatter JSON "
                       "(or raise max_json_depth)", max_json_depth=max_depth, **details)


def too_large(what: str, cap: int, setting: str, **details: Any) -> RunnerError:
    """413 (2014) for a body or file over ``cap`` bytes, naming the setting that sets it."""
    return RunnerError(PackageErrorCode.PAYLOAD_TOO_LARGE,
                       f"{what} is larger than {cap} bytes ({setting}); send less or raise {setting}",
                       limit_bytes=cap, setting=setting, **details)


@dataclass(frozen=True)
class BodyLimits:
    """The byte caps and JSON depth of request bodies (from ``Settings``)."""

    json_bytes: int
    json_depth: int
    zip_bytes: int
    image_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        return cls(settings.max_json_body_bytes, settings.max_json_depth, settings.max_zip_bytes,
                   settings.max_image_bytes)

    def cap_for(self, method: str, path: str, content_type: str) -> tuple[int, str, bool]:
        """(cap in bytes, the setting behind it, whether the body is small enough to buffer here)."""
        if method == "POST" and path in _ZIP_ROUTES and not is_json_type(content_type):
            return self.zip_bytes + MULTIPART_SLACK, "max_zip_bytes", False
        if method == "POST" and path == _EXECUTE_ROUTE and _main_type(content_type) == "multipart/form-data":
            # Multipart images stream into their arrays as they arrive (streaming/form.py); any
            # other form encoding would be parsed in memory, so it gets the small cap below.
            return 2 * self.image_bytes + self.json_bytes, "max_image_bytes", False
        if method == "POST" and path == _EXECUTE_ROUTE and _main_type(content_type) in _RAW_IMAGE_TYPES:
            # A raw image body (fast path): the route streams it into an array, capped per image.
            return self.image_bytes, "max_image_bytes", False
        return self.json_bytes, "max_json_body_bytes", True


def _main_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_json_type(content_type: str) -> bool:
    """True for ``application/json`` and ``application/*+json`` (what FastAPI parses as JSON)."""
    main = _main_type(content_type)
    return main == "application/json" or (main.startswith("application/") and main.endswith("+json"))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class BodyLimitMiddleware:
    """ASGI middleware applying ``BodyLimits`` to every HTTP request (see the module docstring)."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = _header(scope, b"content-type") or ""
        cap, setting, buffer = self.limits.cap_for(scope["method"], scope["path"], content_type)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > cap:
            await error_response(too_large("the request body", cap, setting,
                                           content_length=int(declared)))(scope, receive, send)
            return
        if buffer:
            await self._buffered(scope, receive, send, cap, setting, content_type)
        else:
            await self._streamed(scope, receive, send, cap, setting)

    async def _buffered(self, scope: Scope, receive: Receive, send: Send, cap: int, setting: str,
                        content_type: str) -> None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > cap:
                await error_response(too_large("the request body", cap, setting))(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        data = b"".join(chunks)
        if data and (not content_type or is_json_type(content_type)):
            depth = self.limits.json_depth
            if json_depth(data, depth) > depth:
                await error_response(too_deep("the JSON body", depth))(scope, receive, send)
                return
        await self.app(scope, _replay([{"type": "http.request", "body": data, "more_body": False}], receive),
                       send)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, cap: int, setting: str) -> None:
        state = {"size": 0, "over": False, "answered": False}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["size"] = int(state["size"]) + len(message.get("body", b""))
                if state["size"] > cap:
                    state["over"] = True
                    raise too_large("the request body", cap, setting)
            return message

        async def guarded_send(message: Message) -> None:
            # Once the cap was passed, whatever the app answers (a framework may turn the error
            # into a generic 400) is replaced by the 413 that says which limit to raise.
            if state["over"]:
                if not state["answered"] and message["type"] == "http.response.start":
                    state["answered"] = True
                    await error_response(too_large("the request body", cap, setting))(scope, receive, send)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except RunnerError:
            if not state["over"]:
                raise
        if state["over"] and not state["answered"]:
            state["answered"] = True
            await error_response(too_large("the request body", cap, setting))(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that returns ``messages`` first, then defers to the real one (disconnects)."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
