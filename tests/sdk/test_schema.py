"""Result and get_info schema checks report every problem with its path."""

from __future__ import annotations

from typing import Any

from procvision_algorithm_sdk.manifest import parse_manifest
from procvision_algorithm_sdk.schema import check_execute_result, check_info, check_pre_result

MANIFEST = parse_manifest({"name": "a", "version": "1.0.0", "entry_point": "m:C", "supported_pids": ["P1"]})
INFO: dict[str, Any] = {"name": "a", "version": "1.0.0", "supported_pids": ["P1"],
                        "steps": [{"index": 1, "name": "s", "params": [
                            {"key": "t", "type": "float", "min": 0, "max": 1},
                            {"key": "m", "type": "enum", "choices": ["x", "y"]}]}]}


def paths(issues: list) -> set[str]:
    return {i.path for i in issues}


def test_good_info_passes_and_agrees_with_manifest() -> None:
    assert check_info(INFO, MANIFEST) == []


def test_info_problems() -> None:
    bad = dict(INFO, version="2.0.0", steps=[{"index": 0, "name": "s", "params": [
        {"key": "", "type": "color"}, {"key": "e", "type": "enum"}, {"key": "r", "type": "int", "min": 5, "max": 1}]}])
    found = paths(check_info(bad, MANIFEST))
    assert {"version", "steps[0].index", "steps[0].params[0].key", "steps[0].params[0].type",
            "steps[0].params[1].choices", "steps[0].params[2]"} <= found
    assert check_info("nope")[0].message.startswith("get_info() must return a dict")


def test_execute_ok_and_ng() -> None:
    assert check_execute_result({"status": "OK", "data": {"result_status": "OK"}}) == []
    ng = {"status": "OK", "data": {"result_status": "NG", "ng_reason": "scratch",
                                   "defect_rects": [{"x": 1, "y": 2, "width": 3, "height": 4, "score": 0.9}]}}
    assert check_execute_result(ng) == []


def test_execute_ng_requires_reason_and_rects() -> None:
    found = paths(check_execute_result({"status": "OK", "data": {"result_status": "NG"}}))
    assert found == {"data.ng_reason", "data.defect_rects"}


def test_execute_rect_problems_and_limit() -> None:
    rects = [{"x": 0, "y": 0, "width": 1, "height": 1}] * 21 + [{"x": "a", "y": 0, "width": -1}]
    found = paths(check_execute_result({"status": "OK", "data": {"result_status": "NG", "ng_reason": "r",
                                                                  "defect_rects": rects}}))
    assert {"data.defect_rects", "data.defect_rects[21].x", "data.defect_rects[21].width",
            "data.defect_rects[21].height"} <= found


def test_error_status_needs_no_verdict() -> None:
    assert check_execute_result({"status": "ERROR", "message": "bad", "error_code": "1003"}) == []
    assert paths(check_execute_result({"status": "MAYBE"})) == {"status"}
    assert check_execute_result(None)[0].path == ""


def test_pre_result() -> None:
    assert check_pre_result({"status": "OK", "data": {"calibration_rects": []}}) == []
    assert paths(check_pre_result({"status": "OK", "data": {"calibration_rects": [{"x": 1}]}})) >= {
        "data.calibration_rects[0].y"}
