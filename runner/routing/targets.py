"""Which versions and pids a management request may act on: the checks every activation, switch and
rollback makes before anything starts, each refusal a coded error that says what to do."""

from __future__ import annotations

from collections.abc import Sequence

from runner.errors import PackageErrorCode, RunnerError
from runner.store.registry import Registry, VersionRecord

from .activation import check_pid


def check_pids(pids: Sequence[str]) -> list[str]:
    """``pids`` without repeats, each a valid pid; 2008 for an empty or non-list value."""
    if isinstance(pids, str) or not isinstance(pids, Sequence) or not pids:
        raise RunnerError(PackageErrorCode.INVALID_REQUEST, "give a non-empty list of pids")
    checked: list[str] = []
    for pid in pids:
        if check_pid(pid) not in checked:
            checked.append(pid)
    return checked


def require_installed(registry: Registry, name: str, version: str) -> VersionRecord:
    """The record of a version that may serve: 2009 when not installed, 2006 when recorded invalid."""
    record = registry.get(name, version)
    if record is None:
        raise RunnerError(PackageErrorCode.NOT_FOUND,
                          f"{name} {version} is not installed; install its package first",
                          name=name, version=version)
    if record.invalid:
        error = record.last_error or {}
        why = error.get("message") if isinstance(error, dict) else None
        raise RunnerError(PackageErrorCode.ACTIVATION_CONFLICT,
                          f"{name} {version} is installed but invalid"
                          f"{f' ({why})' if why else ''}; install a fixed package",
                          name=name, version=version, last_error=error)
    return record


def check_target(registry: Registry, name: str, version: str, pids: Sequence[str]
                 ) -> tuple[VersionRecord, list[str]]:
    """The record of the version ``pids`` are to move to, and the checked pids; 2006 when the version
    does not support one of them."""
    pids = check_pids(pids)
    record = require_installed(registry, name, version)
    supported = [str(p) for p in record.supported_pids or []]
    # No supported_pids (a public SDK 0.3.x manifest): the operator's binding decides.
    unsupported = [p for p in pids if p not in supported] if supported else []
    if unsupported:
        raise RunnerError(PackageErrorCode.ACTIVATION_CONFLICT,
                          f"{name} {version} does not support pid(s) {', '.join(unsupported)}; it supports "
                          f"{', '.join(supported)}",
                          name=name, version=version, pids=unsupported, supported_pids=supported)
    return record, pids
