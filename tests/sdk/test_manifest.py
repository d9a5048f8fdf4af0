"""Manifest validation names the field that is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from procvision_algorithm_sdk.manifest import ManifestError, load_manifest, parse_manifest, parse_manifest_bytes

GOOD: dict[str, Any] = {"name": "edge-check", "version": "1.2.0", "entry_point": "edge.main:Algo",
                        "supported_pids": ["A01", "A02"]}


def with_(**changes: Any) -> dict[str, Any]:
    out = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            out.pop(key)
        else:
            out[key] = value
    return out


def test_valid_manifest_parses() -> None:
    m = parse_manifest(with_(python_requires=">=3.10", description="d"))
    assert (m.name, m.version, m.module, m.class_name) == ("edge-check", "1.2.0", "edge.main", "Algo")
    assert m.supported_pids == ("A01", "A02") and m.python_requires == ">=3.10"


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"name": ...}, "name"),
        ({"name": 3}, "name"),
        ({"name": "../evil"}, "name"),
        ({"version": ...}, "version"),
        ({"version": "1.0/2"}, "version"),
        ({"entry_point": "no_colon"}, "entry_point"),
        ({"entry_point": "a.b:"}, "entry_point"),
        ({"supported_pids": ...}, "supported_pids"),
        ({"supported_pids": []}, "supported_pids"),
        ({"supported_pids": "A01"}, "supported_pids"),
        ({"supported_pids": ["A01", 5]}, "supported_pids[1]"),
        ({"supported_pids": ["A/1"]}, "supported_pids[0]"),
        ({"supported_pids": ["A01", "A01"]}, "supported_pids"),
        ({"steps": {}}, "steps"),
        ({"python_requires": 3.11}, "python_requires"),
        ({"default_config": []}, "default_config"),
    ],
)
def test_invalid_fields_are_named(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(with_(**changes))
    assert info.value.field == field
    assert field.split("[")[0] in str(info.value)


def test_not_an_object() -> None:
    with pytest.raises(ManifestError, match="JSON object"):
        parse_manifest([1])


def test_bytes_with_bom_and_bad_json(tmp_path: Path) -> None:
    assert parse_manifest_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode()).name == "edge-check"
    with pytest.raises(ManifestError, match="not valid UTF-8 JSON"):
        parse_manifest_bytes(b"{oops")
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "missing.json")
