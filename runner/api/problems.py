"""The one place where error codes become HTTP statuses and ``application/problem+json`` bodies.

Every failure the API reports is a problem document (RFC 9457) with our numeric ``code`` and its
snake_case ``name`` added, so clients can branch on the code without parsing messages.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from procvision_algorithm_sdk.errors import ErrorCode
from runner.errors import PackageErrorCode, RunnerError, code_name
from runner.jsonable import jsonable
from runner.store.space import disk_full, is_disk_full

PROBLEM_MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("runner.api")

_P = PackageErrorCode
_E = ErrorCode

#: HTTP status of every code we know. Codes not listed are server-side faults (500).
STATUS_BY_CODE: dict[str, int] = {
    # Invalid requests and invalid packages: the caller must change what it sent.
    _P.INVALID_ZIP.value: 422,
    _P.MANIFEST_MISSING.value: 422,
    _P.INCOMPATIBLE_PYTHON.value: 422,
    _P.WHEELS_MISSING.value: 422,
    _P.INSTALL_FAILED.value: 422,
    _P.SMOKE_TEST_FAILED.value: 422,
    _P.INVALID_REQUEST.value: 422,
    _E.INVALID_PID.value: 422,
    _E.IMAGE_LOAD_FAILED.value: 422,
    _E.INVALID_PARAMS.value: 422,
    _E.UNSUPPORTED_COLOR_SPACE.value: 422,
    _E.SHARED_MEMORY_NOT_FOUND.value: 422,
    _P.UNSIGNED.value: 422,
    _P.SIGNATURE_MISMATCH.value: 422,
    _P.UNKNOWN_SIGNER.value: 422,
    _P.CERTIFICATE_INVALID.value: 422,
    _P.SIGNATURE_MALFORMED.value: 422,
    # Unknown things.
    _P.NOT_FOUND.value: 404,
    # Conflicts with the current state.
    _P.ACTIVATION_CONFLICT.value: 409,
    _P.UNSAFE_UNINSTALL.value: 409,
    _P.VERSION_CONFLICT.value: 409,
    _P.BUSY.value: 409,
    _P.ALREADY_RUNNING.value: 409,
    _P.PORT_IN_USE.value: 409,
    _P.SIGNER_NOT_TRUSTED.value: 409,
    _P.SLOT_NOT_FOUND.value: 404,
    _P.SLOT_FOREIGN.value: 403,
    _P.SLOTS_EXHAUSTED.value: 503,
    _P.SLOT_BUSY.value: 409,
    _P.SLOT_INVALID.value: 422,
    _P.UNAUTHORIZED.value: 401,
    _P.CSRF_REJECTED.value: 403,
    _P.PAYLOAD_TOO_LARGE.value: 413,
    _P.DISK_FULL.value: 507,
    _P.INSECURE_SETUP.value: 403,
    # The worker did not answer in time.
    _E.TIMEOUT.value: 504,
    _E.HEARTBEAT_LOST.value: 504,
    # No worker can take the call now.
    _E.NOT_INITIALIZED.value: 503,
    _E.QUEUE_FULL.value: 503,
    _E.WORKER_UNAVAILABLE.value: 503,
    _E.HANDSHAKE_FAILED.value: 503,
    _P.SANDBOX_UNAVAILABLE.value: 503,  # sandbox: require, and no box works here
    _P.SANDBOX_FAILED.value: 503,
    # The worker broke while serving the call.
    _E.WORKER_CRASHED.value: 502,
    _E.MEMORY_LIMIT_EXCEEDED.value: 502,
    _E.PROTOCOL_ERROR.value: 502,
    _E.FRAME_TOO_LARGE.value: 502,
    _E.INVALID_RESULT.value: 502,
    _E.STDOUT_CONTAMINATED.value: 502,
    _E.EXECUTE_EXCEPTION.value: 502,
}

#: Codes that mean the runner (not the algorithm's own answer) failed a call. An execution result
#: carrying one of them is reported as a problem rather than as a 200 with status ERROR.
INFRASTRUCTURE_CODES = frozenset({
    _E.TIMEOUT.value, _E.HEARTBEAT_LOST.value, _E.QUEUE_FULL.value, _E.WORKER_UNAVAILABLE.value,
    _E.HANDSHAKE_FAILED.value, _E.WORKER_CRASHED.value, _E.PROTOCOL_ERROR.value,
    _E.FRAME_TOO_LARGE.value, _E.STDOUT_CONTAMINATED.value, _E.NOT_INITIALIZED.value,
    _E.MEMORY_LIMIT_EXCEEDED.value,
})

_TITLES: dict[int, str] = {
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
    413: "Payload Too Large", 422: "Unprocessable Content", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout", 507: "Insufficient Storage",
}


def status_for(code: str) -> int:
    """HTTP status for a numeric error code."""
    return STATUS_BY_CODE.get(str(code), 500)


def problem_dict(code: str, message: str, details: dict[str, Any] | None = None,
                 status: int | None = None) -> dict[str, Any]:
    """A problem document for ``code``. ``status`` overrides the mapped status (e.g. 405)."""
    http_status = status if status is not None else status_for(code)
    name = code_name(str(code))
    return {
        "type": f"urn:procvision:error:{name}",
        "title": _TITLES.get(http_status, "Error"),
        "status": http_status,
        "detail": message,
        "code": str(code),
        "name": name,
        "details": jsonable(details or {}),
    }


def problem_from_error(err: RunnerError) -> dict[str, Any]:
    """The problem document of a RunnerError."""
    return problem_dict(err.code, err.message, err.details)


def problem_response(problem: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """Render a problem document with the problem media type."""
    return JSONResponse(problem, status_code=int(problem["status"]), media_type=PROBLEM_MEDIA_TYPE,
                        headers=headers)


def error_response(err: RunnerError) -> JSONResponse:
    """Render a RunnerError; 401s carry the ``WWW-Authenticate`` challenge."""
    problem = problem_from_error(err)
    headers = {"WWW-Authenticate": "Bearer"} if problem["status"] == 401 else None
    return problem_response(problem, headers)


def unexpected_response(exc: BaseException, method: str, path: str) -> JSONResponse:
    """A bug on our side: logged with its traceback, answered with a problem instead of a bare 500."""
    _log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return problem_response(problem_dict(_E.UNKNOWN_ERROR.value, f"internal error: {type(exc).__name__}: {exc}"))


def os_error_response(exc: OSError, method: str, path: str) -> JSONResponse:
    """An OSError as an answer (the connection survives): a write that found the disk full is 507
    (2017) wherever it happened; any other OSError is reported as our fault."""
    if is_disk_full(exc):
        return error_response(disk_full(exc.filename or "the runtime root", f"{method} {path}", exc))
    return unexpected_response(exc, method, path)


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """Request fields that do not validate: 422 / 2013 naming the first bad field, all of them in details."""
    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
               "type": str(e.get("type", ""))} for e in exc.errors()]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"]) or "request"
    return problem_response(problem_dict(_P.INVALID_REQUEST.value, f"{where}: {first['msg']}", {"errors": errors}))


def install_handlers(app: FastAPI) -> None:
    """Make every error leave the app as a problem document."""

    async def on_runner_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RunnerError)
        return error_response(exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return validation_response(exc)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            code, message = _P.NOT_FOUND.value, f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            code, message = _P.INVALID_REQUEST.value, f"{request.method} is not allowed on {request.url.path}"
        else:
            code, message = _P.INVALID_REQUEST.value, str(exc.detail)
        return problem_response(problem_dict(code, message, status=exc.status_code),
                                headers=dict(exc.headers) if exc.headers else None)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_response(exc, request.method, request.url.path)

    async def on_os_error(request: Request, exc: Exception) -> JSONResponse:
        # Handled here rather than as a 500 so the connection survives.
        assert isinstance(exc, OSError)
        return os_error_response(exc, request.method, request.url.path)

    app.add_exception_handler(OSError, on_os_error)
    app.add_exception_handler(RunnerError, on_runner_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
