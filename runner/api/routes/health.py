"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from ...metrics import CONTENT_TYPE
from ..context import get_ctx
from ..responses import Liveness, text_response
from ..schemas import PROBLEM_RESPONSES, Readiness

public = APIRouter(tags=["health"])
router = APIRouter(tags=["health"])


@public.get("/livez", response_model=Liveness, summary="The process is up (no auth)")
def livez() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, summary="Every active version has a serving worker",
            responses={503: {"model": Readiness, "description": "not ready; reasons say why"},
                       401: PROBLEM_RESPONSES[401]})
def readyz(request: Request) -> JSONResponse:
    ctx = get_ctx(request)
    if ctx.stopping.is_set():
        return JSONResponse({"ready": False, "reasons": ["the daemon is shutting down"]}, status_code=503)
    ready, reasons = ctx.service.readiness()
    return JSONResponse({"ready": ready, "reasons": reasons}, status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics (text format)",
            responses={**text_response(CONTENT_TYPE, "Prometheus text exposition format"),
                       401: PROBLEM_RESPONSES[401]})
def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(get_ctx(request).service.metrics.render(), media_type=CONTENT_TYPE)
