"""``/openapi.json`` documents the answer of every route: a 200/201/202 response whose schema names
its fields (a model, a list or map of models, or text for the text routes), never an empty or
free-form object. Routes that answer 204 have no body to document."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.support import start_server

SUCCESS = ("200", "201", "202")


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    srv = start_server(tmp_path_factory.mktemp("openapi") / "root")
    try:
        with srv.client() as client:
            response = client.get("/openapi.json")
            assert response.status_code == 200
            yield response.json()
    finally:
        srv.stop()


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _why_undocumented(spec: dict[str, Any], schema: dict[str, Any], media_type: str) -> str | None:
    """None when ``schema`` says what the body holds, else what is missing."""
    resolved = _resolve(spec, schema)
    if media_type.startswith("text/"):
        return None if resolved.get("type") == "string" else f"text body without a string schema: {resolved}"
    if media_type.startswith("image/"):
        binary = resolved.get("type") == "string" and resolved.get("format") == "binary"
        return None if binary else f"image body without a binary string schema: {resolved}"
    if resolved.get("type") == "array":
        return _why_undocumented(spec, resolved.get("items") or {}, media_type)
    if resolved.get("properties"):
        return None
    values = resolved.get("additionalProperties")
    if isinstance(values, dict) and values:
        return _why_undocumented(spec, values, media_type)
    return f"no named fields: {resolved}"


def test_every_route_documents_its_success_answer(spec: dict[str, Any]) -> None:
    problems: list[str] = []
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    assert len(operations) >= 20, sorted(f"{m} {p}" for p, m, _ in operations)
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        responses = operation.get("responses", {})
        success = [code for code in SUCCESS if code in responses]
        if not success:
            if "204" not in responses:
                problems.append(f"{where}: no 200/201/202 (or 204) response")
            continue
        for code in success:
            content = responses[code].get("content") or {}
            if not content:
                problems.append(f"{where} {code}: no content")
            for media_type, body in content.items():
                why = _why_undocumented(spec, body.get("schema") or {}, media_type)
                if why:
                    problems.append(f"{where} {code} {media_type}: {why}")
    assert not problems, "\n".join(problems)


def test_models_carry_the_runner_types_fields(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    # Built from VersionRecord, Binding, ExecutionResult and the SDK's Check: their fields, documented.
    assert {"name", "version", "state", "supported_pids", "dialect", "package_dir", "signature",
            "signer", "sandbox"} <= schemas["VersionOut"]["properties"].keys()
    assert {"pid", "name", "version", "activated_at", "memory_limit_mb"} == schemas["BindingOut"]["properties"].keys()
    assert {"status", "data", "error_code", "served_by", "latency_ms", "retries", "details",
            "timing_ms"} <= schemas["ExecuteAnswer"]["properties"].keys()
    assert {"name", "result", "message"} == schemas["CheckOut"]["properties"].keys()
