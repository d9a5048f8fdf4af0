"""``.procvision_env.json``: the target a package's wheels were chosen for, decoded from the zip.

A broken target file is a broken package description, like a broken manifest: 2002 naming the file.
"""

from __future__ import annotations

from typing import Any

from procvision_algorithm_sdk.json_document import JsonDocumentError, load_json_document

from ..errors import PackageErrorCode, RunnerError


def parse_env_file(data: bytes, entry: str) -> dict[str, Any]:
    """The decoded object; RunnerError 2002 naming ``entry`` if it is not a JSON object nested at
    most MAX_JSON_DEPTH levels."""
    try:
        value = load_json_document(data)
    except JsonDocumentError as exc:
        raise RunnerError(PackageErrorCode.MANIFEST_MISSING, f"{entry} {exc}", entry=entry) from exc
    if not isinstance(value, dict):
        raise RunnerError(PackageErrorCode.MANIFEST_MISSING,
                          f"{entry} must hold a JSON object such as {{\"python_version\": \"3.11\"}}", entry=entry)
    return value
