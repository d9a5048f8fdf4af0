"""Small JSON documents from a package (``manifest.json``, ``.procvision_env.json``), decoded with a
nesting bound.

A document nested thousands of levels deep makes ``json.loads`` (and anything that walks the result
recursively afterwards) raise ``RecursionError``; such a document is a broken package file, and is
reported as one instead of crashing the caller.
"""

from __future__ import annotations

import json
from typing import Any

#: Deepest nesting of objects and lists accepted in a package's JSON files.
MAX_JSON_DEPTH = 32


class JsonDocumentError(ValueError):
    """The bytes are not UTF-8 JSON, or are nested deeper than MAX_JSON_DEPTH."""


def json_depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0, ``[]`` is 1), computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_depth(value: Any) -> None:
    """JsonDocumentError if ``value`` is nested deeper than MAX_JSON_DEPTH."""
    if json_depth(value) > MAX_JSON_DEPTH:
        raise JsonDocumentError(f"is nested more than {MAX_JSON_DEPTH} levels deep; flatten it")


def load_json_document(data: bytes) -> Any:
    """Decode UTF-8 JSON (BOM tolerated) nested at most MAX_JSON_DEPTH levels; JsonDocumentError otherwise."""
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except RecursionError:
        raise JsonDocumentError(f"is nested more than {MAX_JSON_DEPTH} levels deep; flatten it") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise JsonDocumentError(f"is not valid UTF-8 JSON: {exc}") from exc
    check_depth(value)
    return value
