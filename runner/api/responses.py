"""Response bodies of the API as pydantic models, built from the runner's own types so ``/openapi.json``
documents every answer with the fields the code really carries.

A model made from a dataclass (``model_of``) has that dataclass's fields with their types and
defaults: ``VersionOut`` is ``VersionRecord``'s, ``BindingOut`` is ``Binding``'s, ``CheckOut`` is the
SDK report's ``Check``, ``ExecuteAnswer`` is ``ExecutionResult``'s, and the service's results
(service_results.py) give ``BindingsChange``, ``Deactivated``, ``Uninstalled`` and ``VersionStatus``.
The models accept more fields than they declare (``extra="allow"``: an installer's own registry
fields, a report's details) and the routes render only the keys the service returned
(``response_model_exclude_unset``), so declaring a model changes no answer.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from procvision_algorithm_sdk.cli.report import Check
from runner import service_results
from runner.routing.activation import Binding
from runner.routing.calls import ExecutionResult
from runner.store.version_record import VersionRecord


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


def _swap(hint: Any, nested: Mapping[type, Any]) -> Any:
    """``hint`` with each dataclass of ``nested`` replaced by its model (inside lists, dicts, unions)."""
    if isinstance(hint, type) and hint in nested:
        return nested[hint]
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return functools.reduce(operator.or_, [_swap(a, nested) for a in args])
    if origin in (list, dict) and args:
        return origin[tuple(_swap(a, nested) for a in args)]
    return hint


def model_of(source: type, name: str, doc: str, *, exclude: tuple[str, ...] = (),
             nested: Mapping[type, Any] | None = None, base: type[BaseModel] = _Open,
             **more: Any) -> type[BaseModel]:
    """A response model with the fields (types, defaults) of the dataclass ``source``, plus ``more``
    (``name=(type, default)``). ``nested`` maps dataclasses its fields hold to their models."""
    hints = {key: _swap(hint, nested or {}) for key, hint in get_type_hints(source).items()}
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(source):
        if f.name in exclude:
            continue
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        else:
            default = ...
        fields[f.name] = (hints[f.name], default)
    model: type[BaseModel] = create_model(name, __base__=base, __doc__=doc, **fields, **more)
    return model


# --- versions -----------------------------------------------------------------------------------

VersionOut = model_of(
    VersionRecord, "VersionOut",
    "A registry record (runner/store/version_record.py) with its live state: ``state`` is the workers' "
    "state while a pool exists; ``sandbox`` what confines them; ``signer``/``signer_trusted`` who signed it.",
    exclude=("extra",), sandbox=(str | None, None), signer=(str | None, None), signer_trusted=(bool | None, None))


#: ``GET /algorithms`` (typed Any: mypy cannot use a model made at run time inside a generic).
VersionList: Any = list[VersionOut]  # type: ignore[valid-type]


class VersionDetail(VersionOut):  # type: ignore[misc,valid-type]
    """One version: its record plus manifest, get_info, workers, bindings and where its log is."""

    manifest: dict[str, Any] | None = None
    info: Any = None
    workers: dict[str, Any] | None = None
    active_pids: list[str] = []
    log_file: str | None = None
    memory_limit: dict[str, Any] | None = None


VersionStatus = model_of(service_results.VersionStatus, "VersionStatus", str(service_results.VersionStatus.__doc__))
Uninstalled = model_of(service_results.Uninstalled, "Uninstalled", str(service_results.Uninstalled.__doc__))


# --- bindings -----------------------------------------------------------------------------------

BindingOut = model_of(Binding, "BindingOut",
                      "A pid bound to a version (``memory_limit_mb`` only when the version has its own).")


#: ``GET /algorithms/active``: pid -> binding.
ActiveBindings: Any = dict[str, BindingOut]  # type: ignore[valid-type]


VersionRefOut = model_of(service_results.VersionRef, "VersionRef", str(service_results.VersionRef.__doc__))


class PidChangeOut(_Open):
    """What one pid served before the operation (``from``) and after it (``to``; None: unbound)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    pid: str
    before: VersionRefOut | None = Field(None, alias="from")  # type: ignore[valid-type]
    after: VersionRefOut | None = Field(None, alias="to")  # type: ignore[valid-type]


_CHANGES = {Binding: BindingOut, service_results.PidChange: PidChangeOut, service_results.VersionRef: VersionRefOut}
BindingsChange = model_of(service_results.BindingsChange, "BindingsChange",
                          str(service_results.BindingsChange.__doc__), nested=_CHANGES)
Deactivated = model_of(service_results.Deactivated, "Deactivated", str(service_results.Deactivated.__doc__),
                       nested=_CHANGES)


# --- reports and calls --------------------------------------------------------------------------

CheckOut = model_of(Check, "CheckOut", "One check of a report (the SDK's ``Check``); a failed install check "
                                       "also names its error ``code`` and ``error_name``.")


class ReportSummary(_Open):
    status: str = Field(description="PASS or FAIL")
    passed: int
    failed: int


class ValidationReport(_Open):
    """The SDK's validation report (summary + checks) of a zip or an installed version, with what was
    checked (``zip`` or ``name``/``version``) and, for an installed one, its smoke report."""

    summary: ReportSummary
    checks: list[CheckOut]  # type: ignore[valid-type]


ExecuteAnswer = model_of(
    ExecutionResult, "ExecuteAnswer",
    "The checked result of one call and who served it; ``timing_ms`` splits the request's time by phase.",
    timing_ms=(dict[str, float], Field(default_factory=dict)))


# --- logs and health ----------------------------------------------------------------------------

class LogTail(_Open):
    name: str
    version: str
    file: str
    lines: list[str]


class Liveness(_Open):
    status: str = Field(description="always 'ok' while the process serves")


def text_response(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry of a route answering text (its 200 schema: a string)."""
    return {200: {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}}
