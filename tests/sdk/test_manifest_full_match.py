"""Manifest values must match their pattern in full (no trailing newline), and package JSON files
nested absurdly deep are reported as invalid files, not as a crash."""

from __future__ import annotations

from typing import Any

import pytest

from procvision_algorithm_sdk.json_document import MAX_JSON_DEPTH, JsonDocumentError, load_json_document
from procvision_algorithm_sdk.manifest import ManifestError, parse_manifest, parse_manifest_bytes

GOOD: dict[str, Any] = {"name": "edge-check", "version": "1.2.0", "entry_point": "edge.main:Algo",
                        "supported_pids": ["A01"]}


@pytest.mark.parametrize(("key", "value"), [
    ("name", "m4nl\n"), ("version", "1.0.0\n"), ("entry_point", "edge.main:Algo\n"),
    ("supported_pids", ["A01\n"]), ("name", "m4nl\r"), ("name", "\nm4nl"),
])
def test_trailing_or_leading_newline_is_refused(key: str, value: Any) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest({**GOOD, key: value})
    assert caught.value.field.startswith(key) and "invalid" in caught.value.message


def test_deeply_nested_manifest_names_the_problem() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    data = b'{"name": "a", "version": "1", "entry_point": "m:C", "supported_pids": ["P"], "default_config": {"x": ' \
        + deep + b"}}"
    with pytest.raises(ManifestError) as caught:
        parse_manifest_bytes(data)
    assert f"nested more than {MAX_JSON_DEPTH} levels" in str(caught.value) and caught.value.field == ""


def test_nesting_at_the_limit_is_accepted_and_one_more_is_not() -> None:
    def nested(levels: int) -> Any:
        value: Any = 1
        for _ in range(levels):
            value = {"k": value}
        return value

    # The manifest object itself is the first level.

    assert parse_manifest({**GOOD, "default_config": nested(MAX_JSON_DEPTH - 1)}).default_config
    with pytest.raises(ManifestError, match="nested more than"):
        parse_manifest({**GOOD, "default_config": nested(MAX_JSON_DEPTH)})


def test_json_document_errors() -> None:
    assert load_json_document(b'\xef\xbb\xbf{"a": [1]}') == {"a": [1]}
    with pytest.raises(JsonDocumentError, match="not valid UTF-8 JSON"):
        load_json_document(b"{")
    with pytest.raises(JsonDocumentError, match="nested more than"):
        load_json_document(b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
