"""POST /execute: one call on the version active for a pid; the image as a multipart file or the whole body."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from python_multipart.multipart import parse_options_header

from procvision_algorithm_sdk.errors import ErrorCode
from runner.config import Settings
from runner.errors import PackageErrorCode, RunnerError
from runner.supervision.dialects import CallRequest, ImageInput
from runner.supervision.dialects.reservation import ImageReservation

from ..context import AppContext, get_ctx
from ..limits import loads_limited, too_deep
from ..problems import INFRASTRUCTURE_CODES, problem_dict, problem_response, status_for
from ..responses import ExecuteAnswer
from ..schemas import PROBLEM_RESPONSES
from ..streaming.buffers import BufferPool
from ..streaming.form import NPY_TYPES, PIXELS_TYPE, SHAPE_HEADER, ReceivedBody, receive_multipart, receive_raw
from ..streaming.image_sink import LANDINGS
from ..streaming.phase_metrics import PhaseHistograms, UploadLandings
from ..streaming.socket_to_memory import BODY_INTO, BodyInto
from ..streaming.timing import CallTiming, server_timing
from .slots import KEY_HEADER, frame_slots

_POOL_KEY = "execute_buffer_pool"
_PHASES_KEY = "execute_phase_histograms"
_LANDINGS_KEY = "execute_upload_landings"


def buffer_pool(app: Any) -> BufferPool:
    """The app's pool of reused image arrays (made on first use)."""
    pool = getattr(app.state, _POOL_KEY, None)
    if pool is None:
        pool = BufferPool()
        setattr(app.state, _POOL_KEY, pool)
    return pool


def upload_landings(app: Any, ctx: AppContext) -> UploadLandings:
    """The app's counts of where uploaded pixels landed (made on first use)."""
    landings = getattr(app.state, _LANDINGS_KEY, None)
    if landings is None:
        landings = UploadLandings(ctx.service.metrics, LANDINGS)
        setattr(app.state, _LANDINGS_KEY, landings)
    return landings


def record_timing(request: Request, ctx: AppContext, phases: dict[str, float]) -> None:
    """Feed the call's phases to the ``procvision_execute_phase_seconds`` histograms."""
    hists = getattr(request.app.state, _PHASES_KEY, None)
    if hists is None:
        hists = PhaseHistograms(ctx.service.metrics)
        setattr(request.app.state, _PHASES_KEY, hists)
    hists.observe(phases)


router = APIRouter(tags=["execute"], responses={401: PROBLEM_RESPONSES[401]})


def call_budget_s(settings: Settings, phase: str, timeout_s: float | None) -> float:
    """Longest a call can take: each attempt may wait ``timeout`` for a worker and ``timeout`` for
    the answer, and a retryable failure is tried again up to ``max_retries`` times."""
    if timeout_s is None:
        timeout_ms = settings.pre_execute_timeout_ms if phase == "pre" else settings.execute_timeout_ms
        timeout_s = timeout_ms / 1000.0
    return 2.0 * timeout_s * (1 + settings.max_retries)


def _json_field(field: str, raw: str | None, kind: type, default: Any, max_depth: int) -> Any:
    if raw is None or raw == "":
        return default
    try:
        value = loads_limited(raw, max_depth, too_deep(field, max_depth, ErrorCode.INVALID_PARAMS, field=field))
    except ValueError as exc:
        raise RunnerError(ErrorCode.INVALID_PARAMS, f"{field} is not valid JSON: {exc}", field=field) from exc
    if not isinstance(value, kind):
        raise RunnerError(ErrorCode.INVALID_PARAMS, f"{field} must be a JSON {kind.__name__}", field=field)
    return value


class ExecuteFields(BaseModel):
    """The non-image fields of /execute (multipart form fields, or query parameters of a raw body)."""

    model_config = ConfigDict(extra="ignore")

    pid: str = Field(min_length=1, max_length=200, description="Product id; selects the active version")
    step_index: int = Field(default=1, ge=1, le=10000)
    phase: Literal["pre", "execute"] = "execute"
    session_id: str | None = Field(default=None, max_length=200,
                                   description="Keeps session state from pre to execute in one worker")
    session_context: str | None = Field(default=None, description="JSON object")
    user_params: str | None = Field(default=None, description="JSON object of step parameters")
    color_space: Literal["RGB", "BGR"] = "RGB"
    input_order: Literal["RGB", "BGR"] = Field(default="RGB", description="Channel order of an uploaded .npy")
    camera_id: str = Field(default="", max_length=200)
    timestamp_ms: int | None = Field(default=None, ge=0)
    step_desc: str = Field(default="", max_length=10000)
    guide_info: str | None = Field(default=None, description="JSON list (execute-only workers)")
    end_session: bool = False
    timeout_ms: int | None = Field(default=None, gt=0, le=3_600_000)


_FORM_SCHEMA = ExecuteFields.model_json_schema()
_FORM_SCHEMA["properties"].update({
    "image": {"type": "string", "format": "binary", "description": "PNG, JPEG or .npy"},
    "guide_image": {"type": "string", "format": "binary",
                    "description": "PNG, JPEG or .npy (execute-only workers)"}})
_OPENAPI_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": _FORM_SCHEMA},
    "application/x-npy": {"schema": {"type": "string", "format": "binary"},
                          "description": "the image as a .npy file; fields as query parameters"},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"},
                                 "description": "uint8 pixels, row-major, shape in X-Image-Shape: H,W[,C]; "
                                                "fields as query parameters"},
}}}


def _fields(raw: Mapping[str, str]) -> ExecuteFields:
    try:
        return ExecuteFields.model_validate(dict(raw))
    except ValidationError as exc:
        raise RequestValidationError([{**err, "loc": ("body", *err.get("loc", ()))} for err in exc.errors()]) from exc


async def _receive(request: Request, ctx: AppContext, pool: BufferPool) -> tuple[ReceivedBody, dict[str, str]]:
    content_type, params = parse_options_header(request.headers.get("content-type"))
    image_cap, fields_cap = ctx.settings.max_image_bytes, ctx.settings.max_json_body_bytes
    service = ctx.service

    def reserve(fields: Mapping[str, str], shape: tuple[int, ...]) -> ImageReservation | None:
        # The pixels go straight into a segment of the worker that will most likely run the call.
        pid = fields.get("pid")
        return service.reserve_image(pid, fields.get("session_id") or None, shape) if pid else None

    offered = request.scope.get("extensions", {}).get(BODY_INTO)
    direct = offered if isinstance(offered, BodyInto) else None
    if content_type == b"multipart/form-data":
        body = await receive_multipart(request.stream(), params.get(b"boundary"), image_cap, fields_cap, pool,
                                       reserve, direct)
        return body, body.fields
    if content_type in NPY_TYPES or content_type == PIXELS_TYPE:
        query = dict(request.query_params)
        body = await receive_raw(request.stream(), content_type, request.headers.get(SHAPE_HEADER), image_cap, pool,
                                 lambda shape: reserve(query, shape), direct)
        return body, query
    if content_type == b"application/x-www-form-urlencoded":
        # Fields only (no image can travel this way): small, and capped by the body limits already.
        text = (await request.body()).decode("utf-8", "replace")
        return ReceivedBody(), dict(parse_qsl(text, keep_blank_values=True))
    raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                      "send /execute as multipart/form-data (fields + file 'image'), or the image alone as "
                      "application/x-npy or application/octet-stream (+ X-Image-Shape) with the fields as "
                      "query parameters", content_type=content_type.decode("latin-1"))


def _images(body: ReceivedBody, fields: ExecuteFields) -> tuple[ImageInput | None, ImageInput | None]:
    """The decoded images (PNG/JPEG decode here: this runs on a thread when any needs decoding)."""
    out: list[ImageInput | None] = []
    for name in ("image", "guide_image"):
        sink = body.images.get(name)
        out.append(None if sink is None else sink.image(
            color_space=fields.color_space, input_order=fields.input_order, camera_id=fields.camera_id,
            timestamp_ms=fields.timestamp_ms))
    return out[0], out[1]


@router.post("/execute", response_model=ExecuteAnswer, summary="Run pre or execute on the version active for pid",
             openapi_extra=_OPENAPI_BODY,
             responses={404: PROBLEM_RESPONSES[404], 413: PROBLEM_RESPONSES.get(413, {"description": "too large"}),
                        422: PROBLEM_RESPONSES[422],
                        502: {"description": "the worker crashed or answered garbage"},
                        503: {"description": "no worker available or queue full"},
                        504: {"description": "the worker did not answer in time (1005)"}})
async def execute(request: Request, ctx: AppContext = Depends(get_ctx)) -> JSONResponse:
    """One call. The image bytes go into a reused array as they arrive (no temporary file); PNG and
    JPEG are decoded on a thread. The answer carries ``Server-Timing`` and ``timing_ms``."""
    timing = CallTiming()
    slot_id = request.query_params.get("slot")
    if slot_id is not None:
        return await execute_on_slot(request, ctx, slot_id, timing)
    pool = buffer_pool(request.app)
    landings = upload_landings(request.app, ctx)
    body, raw_fields = await _receive(request, ctx, pool)
    landings.count_bytes(body.direct_bytes, body.streamed_bytes)
    handed_over = False
    try:
        timing.lap("receive")
        fields = _fields(raw_fields)
        depth = ctx.settings.max_json_depth
        if any(sink.needs_decode for sink in body.images.values()):
            image, guide_image = await run_in_threadpool(_images, body, fields)
        else:
            image, guide_image = _images(body, fields)
        call = CallRequest(
            phase=fields.phase, step_index=fields.step_index, pid=fields.pid, session_id=fields.session_id,
            session_context=_json_field("session_context", fields.session_context, dict, {}, depth),
            user_params=_json_field("user_params", fields.user_params, dict, {}, depth),
            image=image, guide_image=guide_image, step_desc=fields.step_desc,
            guide_info=_json_field("guide_info", fields.guide_info, list, [], depth), end_session=fields.end_session)
        if call.image is None:
            raise RunnerError(ErrorCode.IMAGE_LOAD_FAILED, "send the camera image as the multipart file 'image' "
                              "(or as the whole body: application/x-npy)")
        timing.lap("decode")
        timeout_s = fields.timeout_ms / 1000.0 if fields.timeout_ms is not None else None
        ctx.drain.expect(call_budget_s(ctx.settings, fields.phase, timeout_s))
        handed_over = True
        result = await ctx.call_threads.run(_execute_then_release, ctx, call, timeout_s, body, landings)
        timing.lap("call")
    finally:
        if not handed_over:
            body.release()
    return _answer(request, ctx, result, timing)


def _observed_call(ctx: AppContext, call: CallRequest, timeout_s: float | None) -> dict[str, Any]:
    """The call on its pid's version (on a worker thread); the console's call log (if any) gets one
    small record of it, taken while the image memory is still the caller's."""
    started = time.monotonic()
    try:
        result = ctx.service.execute(call.pid, call, timeout_s)
    except RunnerError as exc:
        if ctx.calls is not None:
            ctx.calls.record_failure(call, exc, started)
        raise
    if ctx.calls is not None:
        ctx.calls.record(call, result)
    return result


def _execute_then_release(ctx: AppContext, call: CallRequest, timeout_s: float | None,
                          body: ReceivedBody, landings: UploadLandings) -> dict[str, Any]:
    """The call, then the body's memory given back, on the same thread: even if the request is
    cancelled while the call runs, the memory is reused only once the worker is done with it."""
    try:
        return _observed_call(ctx, call, timeout_s)
    finally:
        landings.count(body.release())


def _answer(request: Request, ctx: AppContext, result: dict[str, Any], timing: CallTiming) -> JSONResponse:
    call_phases = result.pop("phases_ms", None)
    phases = timing.finish(call_phases if isinstance(call_phases, dict) else None)
    record_timing(request, ctx, phases)
    headers = {"Server-Timing": server_timing(phases)}
    code = result.get("error_code")
    if result.get("status") != "OK" and code is not None and str(code) in INFRASTRUCTURE_CODES:
        # The runner, not the algorithm, failed this call: report it with the matching HTTP status.
        problem = problem_dict(str(code), str(result.get("message") or "the call failed"),
                               {"result": result, "timing_ms": phases}, status=status_for(str(code)))
        response = problem_response(problem)
        response.headers.update(headers)
        return response
    result["timing_ms"] = phases
    return JSONResponse(result, headers=headers)


async def execute_on_slot(request: Request, ctx: AppContext, slot_id: str, timing: CallTiming,
                          fields: ExecuteFields | None = None) -> JSONResponse:
    """A call on a leased frame slot: the client wrote the frame; the request carries no image.

    ``fields``: the query's fields, when the caller already read the body (empty) and validated them.
    """
    if fields is None:
        if await request.body():
            raise RunnerError(PackageErrorCode.SLOT_INVALID, "a call naming a frame slot sends no body: the frame "
                              "is already in the slot; send the fields as query parameters", slot=slot_id)
        fields = _fields(request.query_params)
    slots = frame_slots(request, ctx)
    slot = slots.acquire(slot_id, request.headers.get(KEY_HEADER))
    try:
        timing.lap("receive")
        depth = ctx.settings.max_json_depth
        call = CallRequest(
            phase=fields.phase, step_index=fields.step_index, pid=fields.pid, session_id=fields.session_id,
            session_context=_json_field("session_context", fields.session_context, dict, {}, depth),
            user_params=_json_field("user_params", fields.user_params, dict, {}, depth),
            image=_slot_image(slot.array(), fields), step_desc=fields.step_desc,
            guide_info=_json_field("guide_info", fields.guide_info, list, [], depth), end_session=fields.end_session)
        timing.lap("decode")
        timeout_s = fields.timeout_ms / 1000.0 if fields.timeout_ms is not None else None
        ctx.drain.expect(call_budget_s(ctx.settings, fields.phase, timeout_s))
        result = await ctx.call_threads.run(_observed_call, ctx, call, timeout_s)
        timing.lap("call")
    finally:
        slots.release_call(slot)
    return _answer(request, ctx, result, timing)


def _slot_image(arr: Any, fields: ExecuteFields) -> ImageInput:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and fields.input_order != fields.color_space:
        arr = arr[:, :, ::-1]
    return ImageInput(array=arr, color_space=fields.color_space, camera_id=fields.camera_id,
                      timestamp_ms=fields.timestamp_ms)
