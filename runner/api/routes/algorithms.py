"""Package management: install, validate, activate/switch/rollback, uninstall, inspect, start/stop."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from runner.errors import PackageErrorCode, RunnerError
from runner.jsonable import jsonable

from ..context import AppContext, get_ctx
from ..limits import loads_limited, too_deep
from ..operations import fingerprint_of
from ..responses import (
    ActiveBindings,
    BindingOut,
    BindingsChange,
    Deactivated,
    Uninstalled,
    ValidationReport,
    VersionDetail,
    VersionList,
    VersionOut,
    VersionStatus,
)
from ..schemas import PROBLEM_RESPONSES, Activate, Activation, OperationOut, PidList, ValidateInstalled, ZipPath
from ..uploads import ReceivedZip, receive_zip

router = APIRouter(prefix="/algorithms", tags=["algorithms"], responses={401: PROBLEM_RESPONSES[401]})
M = TypeVar("M", bound=BaseModel)

_ZIP_BODY: dict[str, Any] = {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "application/zip": {"schema": {"type": "string", "format": "binary"}},
}


def _zip_body(json_schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {**_ZIP_BODY,
                                                          "application/json": {"schema": json_schema}}}}


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


async def _read_json(request: Request, max_depth: int) -> Any:
    # BodyLimitMiddleware already capped the size and depth; parsing stays depth-limited anyway.
    try:
        return loads_limited(await request.body() or b"null", max_depth, too_deep("the JSON body", max_depth))
    except ValueError as exc:
        raise RunnerError(PackageErrorCode.INVALID_REQUEST, f"the body is not valid JSON: {exc}") from exc


def _as_model(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        first = errors[0]
        raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                          f"{'.'.join(first['loc']) or 'body'}: {first['msg']}", errors=errors) from exc


def _local_zip(ctx: AppContext, raw: str) -> Path:
    """The regular ``.zip`` file ``raw`` names on the runner's machine (symlinks resolved)."""
    path = Path(raw)
    if not path.is_absolute():
        raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                          f"'path' must be an absolute path on the runner's machine, got {raw!r}", path=raw)
    try:
        # The daemon opens what the link points at: check the target, not the link.
        resolved = path.resolve(strict=True)
        info = resolved.stat()
    except (OSError, RuntimeError) as exc:
        raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                          f"no zip file at {raw!r} on the runner's machine; upload it instead", path=raw) from exc
    if not stat.S_ISREG(info.st_mode) or resolved.suffix.lower() != ".zip" or path.suffix.lower() != ".zip":
        raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                          f"{raw!r} is not a package: 'path' must name a regular file ending in .zip "
                          "(<name>-v<version>-offline.zip)", path=raw, resolved=str(resolved))
    if info.st_size > ctx.settings.max_zip_bytes:
        raise RunnerError(PackageErrorCode.PAYLOAD_TOO_LARGE,
                          f"{raw} is {info.st_size} bytes, over max_zip_bytes={ctx.settings.max_zip_bytes}",
                          path=raw, size=info.st_size, max_zip_bytes=ctx.settings.max_zip_bytes)
    return resolved


async def _receive(request: Request, ctx: AppContext) -> ReceivedZip:
    return await receive_zip(request, ctx.settings.layout, ctx.settings.max_zip_bytes)


@router.post("/install", status_code=202, response_model=OperationOut,
             summary="Install a package zip (upload or path); returns an operation to poll",
             openapi_extra=_zip_body(ZipPath.model_json_schema()),
             responses={409: PROBLEM_RESPONSES[409], 413: {"description": "upload over max_zip_bytes (2014)"},
                        422: PROBLEM_RESPONSES[422]})
async def install(request: Request, ctx: AppContext = Depends(get_ctx),
                  idempotency_key: str | None = Header(default=None, max_length=200)) -> JSONResponse:
    if ctx.stopping.is_set():
        raise RunnerError(PackageErrorCode.BUSY, "the runner is shutting down; retry after it restarted")
    service = ctx.service
    if _is_json(request):
        body = _as_model(ZipPath, await _read_json(request, ctx.settings.max_json_depth))
        path = _local_zip(ctx, body.path)
        found = path.stat()
        fingerprint = fingerprint_of("path", str(path), str(found.st_size), str(found.st_mtime_ns))
        request_info: dict[str, Any] = {"path": str(path)}
        cleanup = None
    else:
        received = await _receive(request, ctx)
        path = received.path
        fingerprint = fingerprint_of("upload", received.sha256)
        request_info = {"filename": received.filename, "size": received.size, "sha256": received.sha256}
        cleanup = received.discard

    def work(progress: Any, zip_path: Path = path) -> dict[str, Any]:
        return service.install(zip_path, progress=progress)

    op, created = ctx.operations.submit("install", work, idempotency_key=idempotency_key,
                                        fingerprint=fingerprint, request=request_info, cleanup=cleanup)
    return JSONResponse(op.to_dict(), status_code=202 if created else 200,
                        headers={"Location": f"/operations/{op.id}"})


@router.post("/validate", response_model=ValidationReport, response_model_exclude_unset=True,
             summary="Validate a zip (upload or path) or an installed version",
             openapi_extra=_zip_body({"oneOf": [ZipPath.model_json_schema(),
                                                ValidateInstalled.model_json_schema()]}),
             responses={404: PROBLEM_RESPONSES[404], 413: {"description": "upload over max_zip_bytes (2014)"},
                        422: PROBLEM_RESPONSES[422]})
async def validate(request: Request, ctx: AppContext = Depends(get_ctx)) -> ValidationReport:
    return ValidationReport.model_validate(await _validate(request, ctx))


async def _validate(request: Request, ctx: AppContext) -> dict[str, Any]:
    service = ctx.service
    if _is_json(request):
        data = await _read_json(request, ctx.settings.max_json_depth)
        if isinstance(data, dict) and "path" in data:
            path = _local_zip(ctx, _as_model(ZipPath, data).path)
            return await run_in_threadpool(service.validate_zip, path)
        installed = _as_model(ValidateInstalled, data)
        return await run_in_threadpool(service.validate_installed, installed.name, installed.version,
                                       installed.rerun)
    received = await _receive(request, ctx)
    try:
        return await run_in_threadpool(service.validate_zip, received.path)
    finally:
        received.discard()


@router.post("/activate", response_model=BindingsChange, response_model_exclude_unset=True,
             summary="Bind pids to a version (starts its workers)",
             responses={404: PROBLEM_RESPONSES[404], 409: PROBLEM_RESPONSES[409], 422: PROBLEM_RESPONSES[422]})
def activate(body: Activate, ctx: AppContext = Depends(get_ctx)) -> BaseModel:
    return BindingsChange.model_validate(jsonable(ctx.service.activate(body.name, body.version, body.pids,
                                                                    body.memory_limit_mb)))


@router.post("/switch", response_model=BindingsChange, response_model_exclude_unset=True,
             summary="Move pids to another version once it is proven ready",
             responses={404: PROBLEM_RESPONSES[404], 409: PROBLEM_RESPONSES[409], 422: PROBLEM_RESPONSES[422]})
def switch(body: Activation, ctx: AppContext = Depends(get_ctx)) -> BaseModel:
    return BindingsChange.model_validate(jsonable(ctx.service.switch(body.name, body.version, body.pids)))


@router.post("/rollback", response_model=BindingsChange, response_model_exclude_unset=True,
             summary="Re-activate the previous version of each pid",
             responses={404: PROBLEM_RESPONSES[404], 409: PROBLEM_RESPONSES[409], 422: PROBLEM_RESPONSES[422]})
def rollback(body: PidList, ctx: AppContext = Depends(get_ctx)) -> BaseModel:
    return BindingsChange.model_validate(jsonable(ctx.service.rollback(body.pids)))


@router.post("/deactivate", response_model=Deactivated, response_model_exclude_unset=True,
             summary="Unbind pids (their version keeps its workers until stopped)",
             responses={404: PROBLEM_RESPONSES[404], 422: PROBLEM_RESPONSES[422]})
def deactivate(body: PidList, ctx: AppContext = Depends(get_ctx)) -> BaseModel:
    return Deactivated.model_validate(jsonable(ctx.service.deactivate(body.pids)))


@router.get("", response_model=VersionList, response_model_exclude_unset=True,
            summary="Installed versions (filters: state, name)")
def list_versions(ctx: AppContext = Depends(get_ctx), state: str | None = Query(default=None, max_length=50),
                  name: str | None = Query(default=None, max_length=200)) -> list[BaseModel]:
    return [VersionOut.model_validate(r) for r in ctx.service.list_versions(name=name, state=state)]


@router.get("/active", response_model=ActiveBindings, response_model_exclude_unset=True,
            summary="pid -> active name/version")
def active(ctx: AppContext = Depends(get_ctx)) -> dict[str, BaseModel]:
    return {pid: BindingOut.model_validate(jsonable(b)) for pid, b in ctx.service.active().items()}


@router.get("/{name}/{version}", response_model=VersionDetail, response_model_exclude_unset=True,
            summary="One version: manifest, get_info, state, workers, last error",
            responses={404: PROBLEM_RESPONSES[404]})
def show(name: str, version: str, ctx: AppContext = Depends(get_ctx)) -> VersionDetail:
    return VersionDetail.model_validate(ctx.service.show(name, version))


@router.delete("/{name}/{version}", response_model=Uninstalled, response_model_exclude_unset=True,
               summary="Uninstall a version (force=true stops an active/busy one)",
               responses={404: PROBLEM_RESPONSES[404], 409: PROBLEM_RESPONSES[409]})
def uninstall(name: str, version: str, ctx: AppContext = Depends(get_ctx),
              force: bool = Query(default=False)) -> BaseModel:
    return Uninstalled.model_validate(jsonable(ctx.service.uninstall(name, version, force=force)))


@router.post("/{name}/{version}/start", response_model=VersionStatus, response_model_exclude_unset=True,
             summary="Start the version's workers",
             responses={404: PROBLEM_RESPONSES[404], 409: PROBLEM_RESPONSES[409]})
def start(name: str, version: str, ctx: AppContext = Depends(get_ctx)) -> BaseModel:
    return VersionStatus.model_validate(jsonable(ctx.service.start_version(name, version)))


@router.post("/{name}/{version}/stop", response_model=VersionStatus, response_model_exclude_unset=True,
             summary="Stop the version's workers (drains in-flight calls)",
             responses={404: PROBLEM_RESPONSES[404], 409: PROBLEM_RESPONSES[409]})
def stop(name: str, version: str, ctx: AppContext = Depends(get_ctx)) -> BaseModel:
    return VersionStatus.model_validate(jsonable(ctx.service.stop_version(name, version)))


@router.post("/{name}/{version}/restart", response_model=VersionStatus, response_model_exclude_unset=True,
             summary="Restart the version's workers",
             responses={404: PROBLEM_RESPONSES[404], 409: PROBLEM_RESPONSES[409]})
def restart(name: str, version: str, ctx: AppContext = Depends(get_ctx)) -> BaseModel:
    return VersionStatus.model_validate(jsonable(ctx.service.restart_version(name, version)))
