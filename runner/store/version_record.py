"""``VersionRecord``: one version's entry of ``registry.json``, typed.

The registry stores plain JSON objects (the format is described in registry.py); this class is how
the rest of the runner sees one: typed fields for what the runner decides on, ``extra`` for fields
only some writers add (``installer``, ``wheels``, ``venv_python``, ...), which are kept as they are.
``to_dict()`` gives back the JSON object, so an existing registry loads and saves unchanged.

Where a version's files are (its package folder, its venv's interpreter) and how its workers start
(``worker_spec``) are computed here from the root's ``RootLayout``, in one place.

The record also reads like the JSON object it comes from (``record["state"]``, ``record.get(...)``,
``keys()``), for callers that treat records as documents: API bodies, reports, tests.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .layout import RootLayout

if TYPE_CHECKING:
    from runner.supervision.spec import WorkerSpec

INSTALLED = "installed"
INVALID = "invalid"
#: Fields a record always has (missing ones are None), in the order they are written.
FIELDS = ("name", "version", "supported_pids", "state", "created_at", "updated_at", "zip_sha256", "zip_name",
          "python", "python_version", "dialect", "sdk_version", "entry_point", "package_dir", "last_error",
          "smoke", "signature")


@dataclass
class VersionRecord(Mapping[str, Any]):
    """One known package version: what the installer recorded and the state it is in."""

    name: str
    version: str
    state: str | None = None
    supported_pids: list[str] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    zip_sha256: str | None = None
    zip_name: str | None = None
    #: The interpreter the venv was built from (not the venv's own; see ``venv_python``).
    python: str | None = None
    python_version: str | None = None
    dialect: str | None = None
    sdk_version: str | None = None
    entry_point: str | None = None
    #: The folder holding manifest.json, relative to the version folder (None: the version folder).
    package_dir: str | None = None
    last_error: dict[str, Any] | None = None
    smoke: dict[str, Any] | None = None
    signature: dict[str, Any] | None = None
    #: Fields beyond ``FIELDS``, kept as written.
    extra: dict[str, Any] = field(default_factory=dict)

    # --- JSON form -----------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VersionRecord:
        """The record of a registry JSON object (a copy: nothing is shared with ``data``)."""
        if isinstance(data, VersionRecord):
            return data.copy()
        known = {name: copy.deepcopy(data.get(name)) for name in FIELDS if name not in ("name", "version")}
        extra = {k: copy.deepcopy(v) for k, v in data.items() if k not in FIELDS}
        return cls(str(data["name"]), str(data["version"]), **known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The registry JSON object (``FIELDS`` first, then the extra fields); a copy."""
        out = {name: copy.deepcopy(getattr(self, name)) for name in FIELDS}
        out.update(copy.deepcopy(self.extra))
        return out

    def copy(self) -> VersionRecord:
        return dataclasses.replace(self, **{name: copy.deepcopy(getattr(self, name)) for name in FIELDS},
                                   extra=copy.deepcopy(self.extra))

    def changed(self, **fields: Any) -> VersionRecord:
        """A copy with ``fields`` set (known fields typed, others into ``extra``)."""
        known = {k: copy.deepcopy(v) for k, v in fields.items() if k in FIELDS}
        extra = {**copy.deepcopy(self.extra), **{k: copy.deepcopy(v) for k, v in fields.items() if k not in FIELDS}}
        return dataclasses.replace(self.copy(), **known, extra=extra)

    # --- Mapping: the record read as its JSON object -------------------------------------------

    def __getitem__(self, key: str) -> Any:
        if key in FIELDS:
            return getattr(self, key)
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        yield from FIELDS
        yield from (k for k in self.extra if k not in FIELDS)

    def __len__(self) -> int:
        return len(FIELDS) + sum(1 for k in self.extra if k not in FIELDS)

    def __eq__(self, other: object) -> bool:
        # Records compare by content; Mapping's equality would also equal plain dicts.
        if not isinstance(other, VersionRecord):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    # --- what the runner decides on ------------------------------------------------------------

    @property
    def key(self) -> tuple[str, str]:
        return self.name, self.version

    @property
    def invalid(self) -> bool:
        return self.state == INVALID

    def version_dir(self, layout: RootLayout) -> Path:
        return layout.version_dir(self.name, self.version)

    def package_folder(self, layout: RootLayout) -> Path:
        """The folder holding the version's manifest.json (its workers' cwd)."""
        version_dir = self.version_dir(layout)
        return version_dir / self.package_dir if self.package_dir else version_dir

    def venv_python(self, layout: RootLayout) -> Path:
        """The interpreter of the version's venv (what its workers run)."""
        return layout.venv_python(self.name, self.version)

    def worker_spec(self, layout: RootLayout, memory_limit_mb: int | None = None) -> WorkerSpec:
        """How to start this version's workers. A record whose venv is gone but which names the
        interpreter it was built from runs that one (the worker then fails with a clear error)."""
        # Imported here: the store is the bottom layer, and importing the supervision package
        # (numpy, the settings, the pools) would cost every process that only reads the registry
        # about 0.4 s.
        from runner.supervision.spec import WorkerSpec

        venv_python = self.venv_python(layout)
        python = venv_python if venv_python.exists() or not self.python else Path(self.python)
        return WorkerSpec(name=self.name, version=self.version, version_dir=self.version_dir(layout),
                          package_dir=self.package_folder(layout), python=python,
                          entry_point=self.entry_point or None, memory_limit_mb=memory_limit_mb)

