"""The example algorithm, in this process, with real shared-memory images."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from procvision_algorithm_sdk import Session
from procvision_algorithm_sdk.manifest import load_manifest
from procvision_algorithm_sdk.schema import check_execute_result, check_info, check_pre_result
from procvision_algorithm_sdk.shared_memory import ImageSegment

EXAMPLE = Path(__file__).resolve().parents[2] / "example-algorithm"


@pytest.fixture()
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import importlib

    for name in [m for m in list(__import__("sys").modules) if m.split(".")[0] == "defect_detector"]:
        monkeypatch.delitem(__import__("sys").modules, name)
    yield importlib.import_module("defect_detector")


def part_image(height: int = 1200, width: int = 1920, level: float = 190.0, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gray = np.clip(rng.normal(level, 6.0, (height, width)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.stack([gray, gray, gray], axis=2))


def run_step(alg: Any, image: np.ndarray, step: int, pid: str = "A01", params: Any = None,
             session: Session | None = None) -> tuple[dict[str, Any], dict[str, Any], Session]:
    session = session or Session("s1")
    with ImageSegment.create_array(image) as seg:
        meta = seg.image_meta(color_space="RGB")
        pre = alg.pre_execute(step, pid, session, params or {}, seg.id, meta)
        res = alg.execute(step, pid, session, params or {}, seg.id, meta)
    return pre, res, session


def test_info_agrees_with_manifest_and_schema(example: Any) -> None:
    info = example.DefectDetector().get_info()
    manifest = load_manifest(EXAMPLE / "manifest.json")
    assert check_info(info, manifest) == []
    assert [(s["index"], s["name"]) for s in info["steps"]] == [(s["index"], s["name"]) for s in manifest.steps]
    assert info["supported_pids"] == ["A01", "A02"]
    assert (EXAMPLE / "requirements.txt").read_text().split()[0].startswith("numpy")


def test_dark_defect_is_ng_with_rect_near_it(example: Any) -> None:
    image = part_image()
    image[600:640, 1000:1050] = 35
    pre, res, session = run_step(example.DefectDetector(), image, 2)
    assert check_pre_result(pre) == [] and pre["status"] == "OK"
    assert check_execute_result(res) == []
    data = res["data"]
    assert data["result_status"] == "NG" and "1 dark defect" in data["ng_reason"]
    (rect,) = data["defect_rects"]
    assert abs(rect["x"] - 1000) <= 4 and abs(rect["y"] - 600) <= 4
    assert abs(rect["width"] - 50) <= 8 and abs(rect["height"] - 40) <= 8
    assert rect["label"] == "dark_spot" and 0.5 < rect["score"] <= 1.0
    assert session.get("step2")["mean_brightness"] == pytest.approx(data["debug"]["mean_brightness"])


def test_clean_part_is_ok_in_both_steps(example: Any) -> None:
    alg = example.DefectDetector()
    for step in (1, 2):
        _pre, res, _ = run_step(alg, part_image(), step)
        assert check_execute_result(res) == []
        assert res["data"]["result_status"] == "OK", res


def test_precise_mode_and_min_area_filter(example: Any) -> None:
    image = part_image()
    image[300:306, 300:306] = 20  # 36 px: below the default min_area of 40
    _pre, res, _ = run_step(example.DefectDetector(), image, 2, params={"mode": "precise"})
    assert res["data"]["result_status"] == "OK"
    _pre, res, _ = run_step(example.DefectDetector(), image, 2, params={"mode": "precise", "min_area": 20})
    assert res["data"]["result_status"] == "NG"
    (rect,) = res["data"]["defect_rects"]
    assert abs(rect["x"] - 300) <= 2 and abs(rect["y"] - 300) <= 2


def test_execute_uses_the_measurement_pre_execute_stored(example: Any) -> None:
    alg = example.DefectDetector()
    image = part_image(480, 640)
    session = Session("s-forged")
    with ImageSegment.create_array(image) as seg:
        meta = seg.image_meta()
        assert alg.pre_execute(2, "A01", session, {}, seg.id, meta)["status"] == "OK"
        stored = session.get("step2")
        session.set("step2", dict(stored, mean_brightness=1000.0))  # pretend pre_execute saw a brighter part
        res = alg.execute(2, "A01", session, {}, seg.id, meta)
    # With a mean of 1000 every pixel is below 0.6 * mean: the whole region is one defect.
    assert res["data"]["result_status"] == "NG"
    assert res["data"]["debug"]["mean_brightness"] == 1000.0


def test_at_most_20_defect_rects(example: Any) -> None:
    image = part_image(600, 800)
    for i in range(30):
        y, x = 40 + (i // 6) * 100, 40 + (i % 6) * 120
        image[y:y + 12, x:x + 12] = 10
    _pre, res, _ = run_step(example.DefectDetector(), image, 2)
    assert check_execute_result(res) == []
    assert len(res["data"]["defect_rects"]) == 20
    assert res["data"]["ng_reason"].startswith("30 dark defect(s)")


def test_underexposed_part_fails_locate(example: Any) -> None:
    _pre, res, _ = run_step(example.DefectDetector(), part_image(level=30.0), 1)
    assert res["data"]["result_status"] == "NG"
    assert "underexposed" in res["data"]["ng_reason"]
    _pre, res, _ = run_step(example.DefectDetector(), part_image(level=30.0), 1, params={"min_brightness": 20})
    assert res["data"]["result_status"] == "OK"
    assert res["data"]["position_rects"][0]["width"] == 1920


def test_product_a02_ignores_fixture_border(example: Any) -> None:
    image = part_image(600, 800)
    image[:, :20] = 15  # dark fixture edge along the left side
    _pre, res, _ = run_step(example.DefectDetector(), image, 2, pid="A01")
    assert res["data"]["result_status"] == "NG"
    _pre, res, _ = run_step(example.DefectDetector(), image, 2, pid="A02")
    assert res["data"]["result_status"] == "OK"


def test_roi_restricts_the_search(example: Any) -> None:
    image = part_image(600, 800)
    image[500:530, 700:730] = 20
    roi = {"x": 0, "y": 0, "width": 400, "height": 300}
    _pre, res, _ = run_step(example.DefectDetector(), image, 2, params={"roi": roi})
    assert res["data"]["result_status"] == "OK"
    assert res["data"]["debug"]["mean_brightness"] > 150


def test_unknown_pid_is_error_1001(example: Any) -> None:
    pre, res, _ = run_step(example.DefectDetector(), part_image(64, 64), 1, pid="Z99")
    assert pre["status"] == res["status"] == "ERROR"
    assert pre["error_code"] == res["error_code"] == "1001"


@pytest.mark.parametrize("params", [
    {"mode": "turbo"},
    {"min_area": 0},
    {"min_area": 1.5},
    {"dark_threshold": "0.5"},
    {"dark_threshold": True},
    {"roi": {"x": 0, "y": 0, "width": -1, "height": 5}},
    {"roi": {"x": 5000, "y": 0, "width": 10, "height": 10}},
    {"unknown_key": 1},
])
def test_invalid_params_are_error_1003(example: Any, params: dict[str, Any]) -> None:
    pre, res, _ = run_step(example.DefectDetector(), part_image(64, 64), 2, params=params)
    assert pre["status"] == res["status"] == "ERROR"
    assert pre["error_code"] == res["error_code"] == "1003"
    assert json.dumps(res)  # plain JSON, ready for the wire


def _flood_count(mask: np.ndarray) -> int:
    """Reference 8-connected component count (plain BFS) to check the run labeller against."""
    seen = np.zeros_like(mask, dtype=bool)
    count = 0
    h, w = mask.shape
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not seen[y, x]:
                count += 1
                queue = deque([(y, x)])
                seen[y, x] = True
                while queue:
                    cy, cx = queue.popleft()
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            ny, nx = cy + dy, cx + dx
                            if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                                seen[ny, nx] = True
                                queue.append((ny, nx))
    return count


@pytest.mark.parametrize("seed", range(6))
def test_run_labelling_matches_flood_fill(example: Any, seed: int) -> None:
    from defect_detector.blobs import label_runs

    rng = np.random.default_rng(seed)
    mask = rng.random((40, 50)) < (0.2 + 0.1 * seed)
    _rows, _starts, _ends, labels = label_runs(mask)
    assert len(set(labels.tolist())) == _flood_count(mask)


def test_diagonal_pixels_join(example: Any) -> None:
    from defect_detector.blobs import label_runs

    mask = np.eye(5, dtype=bool)
    assert len(set(label_runs(mask)[3].tolist())) == 1
    mask = np.zeros((3, 5), dtype=bool)
    mask[0, 0] = mask[2, 4] = True
    assert len(set(label_runs(mask)[3].tolist())) == 2
