"""The console's routes: the page itself, sign-in/out, recent calls, health series, version sizes.

Everything else the page shows or changes goes through the JSON API it sits next to (the source of
truth); these routes only add what the API has no place for.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from runner.api.context import AppContext, get_ctx
from runner.errors import PackageErrorCode, RunnerError

from .answers import HealthSeries, RecentCall, VersionSize
from .call_log import CallLog
from .cookie_auth import CookieAuth, check_same_origin
from .sessions import COOKIE_NAME
from .sizes import VersionSizes

__all__ = ["mount_console", "static_dir"]

#: The page's files; shipped inside the wheel (runner/console/static), so a station needs no network.
_NO_STORE = {"Cache-Control": "no-store"}


def static_dir() -> str:
    return str(resources.files("runner.console") / "static")


class SignIn(BaseModel):
    """The API token, typed into the sign-in form."""

    token: str = Field(min_length=1, max_length=1000)


def _ctx(request: Request) -> AppContext:
    return get_ctx(request)


def _cookies(request: Request) -> CookieAuth | None:
    return _ctx(request).auth.cookies


def _calls(request: Request) -> CallLog:
    calls = _ctx(request).calls
    if calls is None:
        raise RunnerError(PackageErrorCode.NOT_FOUND, "the console is disabled (console_enabled=false)")
    return calls


#: The page and its sign-in routes are public and browser-only: they stay out of the API spec (whose
#: every route declares the bearer scheme) and are documented in docs/console.md.
public = APIRouter(tags=["console"], include_in_schema=False)
protected = APIRouter(prefix="/console", tags=["console"])


@public.get("/")
def page() -> FileResponse:
    return FileResponse(f"{static_dir()}/index.html", media_type="text/html", headers=_NO_STORE)


@public.get("/console/session", summary="Whether this browser is signed in to the console (no auth)")
def session_state(request: Request) -> JSONResponse:
    auth = _ctx(request).auth
    if not auth.enabled:
        return JSONResponse({"auth_enabled": False, "signed_in": True, "csrf": None}, headers=_NO_STORE)
    cookies = _cookies(request)
    session = cookies.sessions.get(request.cookies.get(COOKIE_NAME)) if cookies is not None else None
    # The CSRF token is readable only by a page of this origin (a cross-site page cannot read answers).
    return JSONResponse({"auth_enabled": True, "signed_in": session is not None,
                         "csrf": session.csrf if session is not None else None}, headers=_NO_STORE)


@public.post("/console/session", summary="Sign in with the API token: sets the session cookie, returns the CSRF "
                                         "token (401 2015 on a wrong token)")
def sign_in(body: SignIn, request: Request) -> JSONResponse:
    ctx = _ctx(request)
    check_same_origin(request)
    if not ctx.auth.enabled:
        return JSONResponse({"auth_enabled": False, "signed_in": True, "csrf": None})
    cookies = _cookies(request)
    if cookies is None:
        raise RunnerError(PackageErrorCode.NOT_FOUND, "the console is disabled (console_enabled=false)")
    if not ctx.auth.token_matches(body.token.strip()):
        raise RunnerError(PackageErrorCode.UNAUTHORIZED,
                          "wrong token: use the API token in <root>/.token on the station (or the configured one)")
    session = cookies.sessions.create()
    response = JSONResponse({"auth_enabled": True, "signed_in": True, "csrf": session.csrf}, headers=_NO_STORE)
    response.set_cookie(COOKIE_NAME, session.id, max_age=int(cookies.sessions.ttl_s), path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@public.delete("/console/session", summary="Sign out (needs the session's X-CSRF-Token)")
def sign_out(request: Request) -> JSONResponse:
    cookies = _cookies(request)
    if cookies is not None and cookies.sessions.get(request.cookies.get(COOKIE_NAME)) is not None:
        cookies.authenticate(request, request.method)  # a live session ends only with its CSRF token
        cookies.sessions.delete(request.cookies.get(COOKIE_NAME))
    response = JSONResponse({"signed_in": False}, headers=_NO_STORE)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response


@protected.get("/calls", response_model=list[RecentCall],
               summary="The most recent execute calls (newest first), kept in memory")
def recent_calls(request: Request, limit: int = Query(default=50, ge=1, le=1000)) -> list[dict[str, Any]]:
    return [record.to_dict() for record in _calls(request).recent.list(limit)]


@protected.get("/calls/{call_id}/thumbnail.png", summary="A recent call's image, small (PNG)",
               response_class=Response,
               responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}})
async def thumbnail(call_id: int, request: Request) -> Response:
    record = _calls(request).recent.get(call_id)
    if record is None or record.thumbnail is None:
        raise RunnerError(PackageErrorCode.NOT_FOUND,
                          f"call {call_id} is no longer among the recent calls (or had no decoded image)",
                          call_id=call_id)
    data = await run_in_threadpool(record.thumbnail.png)
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@protected.get("/health", response_model=HealthSeries,
               summary="Calls, errors and latency p50/p99 per second over the last minutes")
def health(request: Request, last_s: int = Query(default=300, ge=10, le=3600)) -> dict[str, Any]:
    points = _calls(request).health.points(last_s)
    return {"points": [{"t": p.t, "calls": p.calls, "errors": p.errors, "p50_ms": p.p50_ms, "p99_ms": p.p99_ms}
                       for p in points]}


@protected.get("/sizes", response_model=list[VersionSize],
               summary="Disk use of each installed version (package and venv), in bytes")
async def sizes(request: Request) -> list[dict[str, Any]]:
    ctx = _ctx(request)
    measure: VersionSizes = request.app.state.console_sizes
    records = await run_in_threadpool(ctx.service.list_versions)

    def walk() -> list[dict[str, Any]]:
        return [{"name": r["name"], "version": r["version"],
                 "size_bytes": measure.size_of(r["name"], r["version"], str(r.get("zip_sha256") or ""))}
                for r in records]

    return await run_in_threadpool(walk)


def mount_console(app: FastAPI, dependencies: list[Any]) -> None:
    """Serve the console at ``/`` (its files under /console/static) next to the API."""
    app.state.console_sizes = VersionSizes(app.state.ctx.settings.layout)
    app.include_router(public)
    app.include_router(protected, dependencies=dependencies)
    app.mount("/console/static", StaticFiles(directory=static_dir()), name="console-static")
