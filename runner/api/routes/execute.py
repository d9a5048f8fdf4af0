"""POST /execute: one call on the version active for a pid, images as multipart files."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from procvision_algorithm_sdk.errors import ErrorCode
from runner.config import Settings
from runner.errors import RunnerError
from runner.routing.images import decode_image
from runner.supervision.dialects import CallRequest, ImageInput

from ..context import AppContext, get_ctx
from ..limits import loads_limited, too_deep, too_large
from ..problems import INFRASTRUCTURE_CODES, problem_dict, problem_response, status_for
from ..schemas import PROBLEM_RESPONSES

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


async def _image(field: str, upload: UploadFile | None, limit: int, color_space: str, camera_id: str,
                 timestamp_ms: int | None, input_order: str) -> ImageInput | None:
    if upload is None:
        return None
    # The part was spooled to a temporary file while the body streamed in: an oversized file is
    # refused by its size, and an accepted one is decoded from that file, never copied into memory.
    size = upload.size
    if size is None:
        await upload.seek(0)
        size = len(await upload.read(limit + 1))
    if size > limit:
        raise too_large(f"the uploaded file {upload.filename or upload.content_type or 'image'!r}", limit,
                        "max_image_bytes", field=field, size=size)
    return await run_in_threadpool(decode_image, upload.file, color_space=color_space, camera_id=camera_id,
                                   timestamp_ms=timestamp_ms, input_order=input_order, max_bytes=limit)


@router.post("/execute", summary="Run pre or execute on the version active for pid",
             responses={404: PROBLEM_RESPONSES[404], 422: PROBLEM_RESPONSES[422],
                        502: {"description": "the worker crashed or answered garbage"},
                        503: {"description": "no worker available or queue full"},
                        504: {"description": "the worker did not answer in time (1005)"}})
async def execute(
    ctx: AppContext = Depends(get_ctx),
    pid: str = Form(min_length=1, max_length=200, description="Product id; selects the active version"),
    step_index: int = Form(default=1, ge=1, le=10000),
    phase: Literal["pre", "execute"] = Form(default="execute"),
    session_id: str | None = Form(default=None, max_length=200,
                                  description="Keeps session state from pre to execute in one worker"),
    session_context: str | None = Form(default=None, description="JSON object"),
    user_params: str | None = Form(default=None, description="JSON object of step parameters"),
    color_space: Literal["RGB", "BGR"] = Form(default="RGB"),
    input_order: Literal["RGB", "BGR"] = Form(default="RGB", description="Channel order of an uploaded .npy"),
    camera_id: str = Form(default="", max_length=200),
    timestamp_ms: int | None = Form(default=None, ge=0),
    step_desc: str = Form(default="", max_length=10000),
    guide_info: str | None = Form(default=None, description="JSON list (execute-only workers)"),
    end_session: bool = Form(default=False),
    timeout_ms: int | None = Form(default=None, gt=0, le=3_600_000),
    image: UploadFile | None = File(default=None, description="PNG, JPEG or .npy"),
    guide_image: UploadFile | None = File(default=None, description="PNG, JPEG or .npy (execute-only workers)"),
) -> JSONResponse:
    depth, image_cap = ctx.settings.max_json_depth, ctx.settings.max_image_bytes
    request = CallRequest(
        phase=phase, step_index=step_index, pid=pid, session_id=session_id,
        session_context=_json_field("session_context", session_context, dict, {}, depth),
        user_params=_json_field("user_params", user_params, dict, {}, depth),
        image=await _image("image", image, image_cap, color_space, camera_id, timestamp_ms, input_order),
        guide_image=await _image("guide_image", guide_image, image_cap, color_space, camera_id, timestamp_ms,
                                 input_order),
        step_desc=step_desc, guide_info=_json_field("guide_info", guide_info, list, [], depth),
        end_session=end_session)
    if request.image is None:
        raise RunnerError(ErrorCode.IMAGE_LOAD_FAILED, "send the camera image as the multipart file 'image'")
    timeout_s = timeout_ms / 1000.0 if timeout_ms is not None else None
    ctx.drain.expect(call_budget_s(ctx.settings, phase, timeout_s))
    result = await run_in_threadpool(ctx.service.execute, pid, request, timeout_s)
    code = result.get("error_code")
    if result.get("status") != "OK" and code is not None and str(code) in INFRASTRUCTURE_CODES:
        # The runner, not the algorithm, failed this call: report it with the matching HTTP status.
        problem = problem_dict(str(code), str(result.get("message") or "the call failed"),
                               {"result": result}, status=status_for(str(code)))
        return problem_response(problem)
    return JSONResponse(result)

