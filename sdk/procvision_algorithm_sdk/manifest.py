"""``manifest.json``: parsing and field-by-field validation.

Shared by ``procvision-cli validate`` and the runner's installer, so an author and a station judge a
package by the same rules. Errors name the field and say what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .json_document import JsonDocumentError, check_depth, load_json_document

# Anchored with \A...\Z, not ^...$: "$" also matches before a trailing newline, and these values
# become folder and file names. Callers use fullmatch as well.
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
VERSION_RE = re.compile(r"\A[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}\Z")
ENTRY_RE = re.compile(r"\A[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*\Z")
#: Product ids become file names (``active/<pid>.json``), so they are kept to a safe alphabet.
PID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


class ManifestError(ValueError):
    """A manifest problem. ``field`` names the offending key ("" for the whole file)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"manifest.json: {field_name + ': ' if field_name else ''}{message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. ``raw`` keeps every key, including ones this SDK does not know."""

    name: str
    version: str
    entry_point: str
    supported_pids: tuple[str, ...]
    description: str = ""
    steps: tuple[dict[str, Any], ...] = ()
    python_requires: str | None = None
    required_assets: tuple[Any, ...] = ()
    default_config: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return self.entry_point.split(":", 1)[0]

    @property
    def class_name(self) -> str:
        return self.entry_point.split(":", 1)[1]


def _require_str(obj: dict[str, Any], key: str, pattern: re.Pattern[str], hint: str) -> str:
    if key not in obj:
        raise ManifestError(key, f"required field is missing ({hint})")
    value = obj[key]
    if not isinstance(value, str):
        raise ManifestError(key, f"must be a string, got {type(value).__name__} ({hint})")
    if not pattern.fullmatch(value):
        raise ManifestError(key, f"invalid value {value!r} ({hint})")
    return value


def parse_manifest(obj: Any, *, pids_required: bool = True) -> Manifest:
    """Validate a decoded manifest and return it. Raises ManifestError naming the field.

    ``pids_required=False`` accepts a manifest without ``supported_pids`` (the public SDK 0.3.x
    dropped the field): ``supported_pids`` is then empty.
    """
    if not isinstance(obj, dict):
        raise ManifestError("", f"must hold a JSON object, got {type(obj).__name__}")
    try:
        check_depth(obj)
    except JsonDocumentError as exc:
        raise ManifestError("", str(exc)) from exc
    name = _require_str(obj, "name", NAME_RE, "letters, digits, '.', '_', '-'; at most 64 characters")
    version = _require_str(obj, "version", VERSION_RE, "e.g. '1.2.0'; letters, digits, '.', '+', '_', '-'")
    entry = _require_str(obj, "entry_point", ENTRY_RE, "'package.module:ClassName'")
    if "supported_pids" not in obj and pids_required:
        raise ManifestError("supported_pids", "required field is missing (a list of product id strings)")
    pids = obj.get("supported_pids", [])
    if not isinstance(pids, list) or (not pids and "supported_pids" in obj):
        raise ManifestError("supported_pids", "must be a non-empty list of product id strings")
    for i, pid in enumerate(pids):
        if not isinstance(pid, str) or not PID_RE.fullmatch(pid):
            raise ManifestError(f"supported_pids[{i}]",
                                f"invalid product id {pid!r} (letters, digits, '.', '_', '-'; at most 128)")
    if len(set(pids)) != len(pids):
        raise ManifestError("supported_pids", "lists the same product id twice")
    description = obj.get("description", "")
    if not isinstance(description, str):
        raise ManifestError("description", "must be a string")
    steps = obj.get("steps", [])
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        raise ManifestError("steps", "must be a list of step objects")
    python_requires = obj.get("python_requires")
    if python_requires is not None and not isinstance(python_requires, str):
        raise ManifestError("python_requires", "must be a version specifier string such as '>=3.10,<3.13'")
    assets = obj.get("required_assets", [])
    if not isinstance(assets, list):
        raise ManifestError("required_assets", "must be a list")
    default_config = obj.get("default_config", {})
    if not isinstance(default_config, dict):
        raise ManifestError("default_config", "must be an object")
    return Manifest(name=name, version=version, entry_point=entry, supported_pids=tuple(pids),
                    description=description, steps=tuple(steps), python_requires=python_requires,
                    required_assets=tuple(assets), default_config=dict(default_config), raw=dict(obj))


def parse_manifest_bytes(data: bytes, *, pids_required: bool = True) -> Manifest:
    """Decode and validate manifest bytes (UTF-8 JSON, BOM tolerated)."""
    try:
        obj = load_json_document(data)
    except JsonDocumentError as exc:
        raise ManifestError("", str(exc)) from exc
    return parse_manifest(obj, pids_required=pids_required)


def load_manifest(path: str | Path, *, pids_required: bool = True) -> Manifest:
    """Read and validate a manifest file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ManifestError("", f"cannot read {path}: {exc.strerror or exc}") from exc
    return parse_manifest_bytes(data, pids_required=pids_required)


def manifest_problems(obj: Any) -> list[str]:
    """Validation as a list of messages (empty when valid), for reports."""
    try:
        parse_manifest(obj)
    except ManifestError as exc:
        return [str(exc)]
    return []
