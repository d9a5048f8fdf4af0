"""``registry.json``: every known package version and its state.

File format: ``{"format": 1, "versions": [record, ...]}`` sorted by name then version. A record is a
plain JSON object::

    name, version, supported_pids, state, created_at, updated_at (ISO-8601 UTC), zip_sha256, zip_name,
    python (interpreter path used for the venv), python_version, dialect, sdk_version, entry_point,
    package_dir (relative to the version folder), last_error ({code,name,message,details} | null),
    smoke (smoke-test report | null), signature ({status, mode, signer, error} from runner/trust | null)

Every call re-reads the file under the root lock and every change rewrites it atomically, so several
processes (daemon, CLI) and threads can use one root safely. Records are handed out as typed
``VersionRecord`` copies (version_record.py), which write back the same JSON objects.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import PackageErrorCode, RunnerError
from .atomic import read_json, write_json_atomic
from .layout import RootLayout
from .locks import ROOT_LOCK_TIMEOUT_S, root_lock
from .version_record import FIELDS, INSTALLED, INVALID, VersionRecord

FORMAT = 1
#: States a record may hold: the installer's (installed, invalid) and the supervisor's runtime states.
STATES = frozenset({INSTALLED, INVALID, "starting", "running", "executing", "stopping", "stopped", "failed"})

__all__ = ["FIELDS", "FORMAT", "INSTALLED", "INVALID", "STATES", "Registry", "VersionRecord", "utc_now"]
Records = list[VersionRecord]


def utc_now() -> str:
    """Timestamp format of the registry."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _key(record: VersionRecord) -> tuple[str, str]:
    return record.key


class Registry:
    """The registry of one runtime root."""

    def __init__(self, layout: RootLayout, lock_timeout_s: float = ROOT_LOCK_TIMEOUT_S) -> None:
        self.layout = layout
        self._lock_timeout_s = lock_timeout_s

    # --- reading -------------------------------------------------------------------------------

    def get(self, name: str, version: str) -> VersionRecord | None:
        """The record of ``name``/``version``, or None."""
        with root_lock(self.layout, self._lock_timeout_s):
            return self._find(self._load(), name, version)

    def require(self, name: str, version: str) -> VersionRecord:
        """Like ``get`` but RunnerError NOT_FOUND when unknown."""
        record = self.get(name, version)
        if record is None:
            raise RunnerError(PackageErrorCode.NOT_FOUND, f"{name} {version} is not installed",
                              name=name, version=version)
        return record

    def list(self, name: str | None = None, state: str | None = None) -> Records:
        """All records, optionally only those of one package name and/or in one state."""
        with root_lock(self.layout, self._lock_timeout_s):
            records = self._load()
        return [r for r in records
                if (name is None or r.name == name) and (state is None or r.state == state)]

    # --- changing ------------------------------------------------------------------------------

    def put(self, record: VersionRecord | Mapping[str, Any]) -> VersionRecord:
        """Insert or replace the record of its name/version; returns what was stored.

        ``record`` may also be a registry JSON object (the installer's marker file holds one).
        ``created_at`` is kept from an existing record; ``updated_at`` is set now.
        """
        if record.get("state") not in STATES:
            raise ValueError(f"unknown registry state {record.get('state')!r}")
        new = VersionRecord.from_dict(record)

        def change(records: Records) -> VersionRecord:
            old = self._find(records, *new.key)
            now = utc_now()
            new.created_at = (old.created_at if old is not None else None) or new.created_at or now
            new.updated_at = now
            records[:] = [r for r in records if r.key != new.key] + [new]
            return new.copy()

        return self._mutate(change)

    def update(self, name: str, version: str, **fields: Any) -> VersionRecord:
        """Change some fields of an existing record (NOT_FOUND if there is none); returns the new record."""
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"unknown registry state {fields['state']!r}")
        if {"name", "version"} & fields.keys():
            raise ValueError("name and version of a record cannot change")

        def change(records: Records) -> VersionRecord:
            for index, record in enumerate(records):
                if record.key == (name, version):
                    records[index] = record.changed(**fields, updated_at=utc_now())
                    return records[index].copy()
            raise RunnerError(PackageErrorCode.NOT_FOUND, f"{name} {version} is not installed",
                              name=name, version=version)

        return self._mutate(change)

    def update_state(self, name: str, version: str, state: str,
                     error: RunnerError | dict[str, Any] | None = None) -> VersionRecord:
        """Set the state (and ``last_error``: the given error, or None when ``error`` is None)."""
        last_error = error.to_dict() if isinstance(error, RunnerError) else error
        return self.update(name, version, state=state, last_error=last_error)

    def remove(self, name: str, version: str) -> bool:
        """Delete the record; True if there was one."""

        def change(records: Records) -> bool:
            before = len(records)
            records[:] = [r for r in records if r.key != (name, version)]
            return len(records) != before

        return self._mutate(change)

    def mutate(self, change: Callable[[Records], Any]) -> Any:
        """Run ``change(records)`` under the root lock and save the list it leaves; returns its result.

        For compound changes (several records at once). ``change`` edits the list in place
        (replacing or editing its ``VersionRecord`` items).
        """
        return self._mutate(change)

    # --- internals -----------------------------------------------------------------------------

    def _mutate(self, change: Callable[[Records], Any]) -> Any:
        with root_lock(self.layout, self._lock_timeout_s):
            records = self._load()
            result = change(records)
            records.sort(key=_key)
            write_json_atomic(self.layout.registry_file,
                              {"format": FORMAT, "versions": [r.to_dict() for r in records]})
            return result

    def _load(self) -> Records:
        path = self.layout.registry_file
        try:
            data = read_json(path, default={"format": FORMAT, "versions": []})
        except ValueError as exc:
            raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                              f"{path} is not valid JSON ({exc}); restore it from a backup or delete it "
                              "and reinstall the packages", path=str(path)) from exc
        versions = data.get("versions") if isinstance(data, dict) else data
        if not isinstance(versions, list):
            raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                              f"{path} does not hold a list of versions", path=str(path))
        return [VersionRecord.from_dict(r) for r in versions if isinstance(r, dict) and "name" in r and "version" in r]

    @staticmethod
    def _find(records: Records, name: str, version: str) -> VersionRecord | None:
        for record in records:
            if record.key == (name, version):
                return record.copy()
        return None
