"""Request and response bodies of the management API (pydantic models; they shape the OpenAPI)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_NAME = Field(min_length=1, max_length=200, description="Package name (manifest 'name')")
_VERSION = Field(min_length=1, max_length=100, description="Package version (manifest 'version')")
_PIDS = Field(min_length=1, max_length=1000, description="Product ids to bind")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZipPath(_Strict):
    """A package zip that already sits on the runner's machine."""

    path: str = Field(min_length=1, max_length=4096, description="Absolute path of a zip on the runner host")


class ValidateInstalled(_Strict):
    """Validate an installed version: its stored smoke report, or a fresh smoke run."""

    name: str = _NAME
    version: str = _VERSION
    rerun: bool = Field(default=False, description="Run the smoke test again instead of reporting the stored one")


class Activation(_Strict):
    """Bind ``pids`` to ``name``/``version``."""

    name: str = _NAME
    version: str = _VERSION
    pids: list[str] = _PIDS


class Activate(Activation):
    """Bind ``pids`` to ``name``/``version``, optionally with the version's own memory limit."""

    memory_limit_mb: int | None = Field(default=None, ge=0, le=1024 * 1024,
                                        description="Memory limit of each of the version's workers in MB "
                                                    "(0: none); default: the version's current one, else "
                                                    "the worker_memory_limit_mb setting")


class PidList(_Strict):
    """A list of product ids (rollback)."""

    pids: list[str] = _PIDS


class OperationOut(BaseModel):
    """A long-running operation (install)."""

    id: str
    kind: str
    state: Literal["pending", "running", "succeeded", "failed"]
    stage: str | None = None
    stages: list[str] = []
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    idempotency_key: str | None = None
    request: dict[str, Any] = {}


class Problem(BaseModel):
    """An ``application/problem+json`` error body."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Numeric error code, e.g. '2009'")
    name: str = Field(description="snake_case name of the code, e.g. 'not_found'")
    details: dict[str, Any] = {}


class Readiness(BaseModel):
    ready: bool
    reasons: list[str] = []


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}, "description": text}
    for status, text in {401: "missing or wrong bearer token (2015)", 404: "unknown version or operation (2009)",
                         409: "conflict (2006, 2007, 2008, 2011, 2012)",
                         422: "malformed request or invalid package"}.items()
}
