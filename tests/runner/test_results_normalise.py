"""results.normalise: worker replies become checked results; garbage becomes 1014, never an exception."""

from __future__ import annotations

from typing import Any

import pytest

from runner.routing.results import MESSAGE_ISSUES, RAW_DATA_LIMIT_BYTES, normalise
from runner.supervision.dialects import Dialect
from runner.supervision.spec import CallOutcome


def outcome(status: str = "OK", data: Any = None, message: str = "", code: str | None = None,
            name: str | None = None) -> CallOutcome:
    return CallOutcome(status=status, message=message, data=data, error_code=code, error_name=name,
                       worker_pid=123, latency_ms=1.0, retries=0, dialect=Dialect.PROCVISION)


def rect(**extra: Any) -> dict[str, Any]:
    return {"x": 1, "y": 2, "width": 3, "height": 4, **extra}


def test_ok_verdict_passes_and_echo_fields_are_dropped() -> None:
    result = normalise("execute", outcome(data={"phase": "execute", "step_index": 1, "result_status": "OK"}), 20)
    assert result.status == "OK"
    assert result.data == {"result_status": "OK"}
    assert result.error_code is None and result.issues == []


def test_ng_with_reason_and_rects_passes() -> None:
    data = {"result_status": "NG", "ng_reason": "scratch", "defect_rects": [rect(label="s", score=0.9)]}
    result = normalise("execute", outcome(data=data), 20)
    assert result.status == "OK"
    assert result.data["defect_rects"][0]["label"] == "s"


@pytest.mark.parametrize(("data", "path"), [
    ({}, "data.result_status"),
    ({"result_status": "MAYBE"}, "data.result_status"),
    ({"result_status": "NG", "defect_rects": [rect()]}, "data.ng_reason"),
    ({"result_status": "NG", "ng_reason": "x"}, "data.defect_rects"),
    ({"result_status": "NG", "ng_reason": "x", "defect_rects": [{"x": 1}]}, "data.defect_rects[0].y"),
    ({"result_status": "OK", "defect_rects": [rect(width=-1)]}, "data.defect_rects[0].width"),
    ({"result_status": "OK", "defect_rects": "many"}, "data.defect_rects"),
])
def test_invalid_execute_results_become_1014(data: dict[str, Any], path: str) -> None:
    result = normalise("execute", outcome(data=data), 20)
    assert result.status == "ERROR"
    assert (result.error_code, result.error_name) == ("1014", "invalid_result")
    assert path in [i["path"] for i in result.issues]
    assert result.data["issues"] == result.issues
    assert "execute()" in result.message and path in result.message


def test_too_many_defects_uses_the_configured_limit() -> None:
    data = {"result_status": "NG", "ng_reason": "x", "defect_rects": [rect() for _ in range(5)]}
    assert normalise("execute", outcome(data=data), 5).status == "OK"
    result = normalise("execute", outcome(data=data), 4)
    assert result.error_code == "1014"
    assert "at most 4" in result.message


def test_unknown_status_and_non_object_data_are_1014() -> None:
    assert normalise("execute", outcome(status="PASS", data={"result_status": "OK"}), 20).error_code == "1014"
    result = normalise("pre", outcome(data=["not", "a", "dict"]), 20)
    assert result.error_code == "1014" and result.issues[0]["path"] == "data"


def test_many_issues_message_is_short_but_data_lists_all() -> None:
    rects = [{"x": "a"} for _ in range(4)]
    result = normalise("execute", outcome(data={"result_status": "NG", "ng_reason": "x", "defect_rects": rects}), 20)
    assert len(result.issues) > MESSAGE_ISSUES
    assert f"and {len(result.issues) - MESSAGE_ISSUES} more" in result.message


def test_huge_raw_data_is_truncated() -> None:
    big = {"result_status": "BAD", "blob": "x" * (RAW_DATA_LIMIT_BYTES * 2)}
    result = normalise("execute", outcome(data=big), 20)
    assert isinstance(result.data["raw"], str) and result.data["raw"].endswith("(truncated)")


def test_error_outcome_keeps_worker_code_and_name() -> None:
    result = normalise("execute", outcome("ERROR", {"phase": "execute", "hint": 1}, "camera dark", "1003",
                                          "invalid_params"), 20)
    assert (result.status, result.error_code, result.error_name) == ("ERROR", "1003", "invalid_params")
    assert result.message == "camera dark"
    assert result.data == {"hint": 1}


def test_error_outcome_without_code_is_unknown_error() -> None:
    result = normalise("execute", outcome("ERROR", None, ""), 20)
    assert (result.error_code, result.error_name) == ("1000", "unknown_error")
    assert "1000" in result.message


def test_pre_result_checks_calibration_rects() -> None:
    assert normalise("pre", outcome(data={"calibration_rects": [rect()]}), 20).status == "OK"
    bad = normalise("pre", outcome(data={"calibration_rects": [{"x": 1}]}), 20)
    assert bad.error_code == "1014" and "pre_execute()" in bad.message


def test_info_result_checks_the_info_document() -> None:
    info = {"name": "a", "version": "1", "supported_pids": ["P1"], "steps": []}
    ok = normalise("info", outcome(data={"phase": "info", "step_index": 0, "info": info}), 20)
    assert ok.status == "OK" and ok.data == {"info": info}
    bad = normalise("info", outcome(data={"info": {"name": "a"}}), 20)
    assert bad.error_code == "1014"
    assert "info.version" in [i["path"] for i in bad.issues]
