"""The execute-only example algorithm finds where the current image differs from the guide image."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "example-algorithm-execute-only"


@pytest.fixture
def algorithm() -> Iterator[Any]:
    sys.path.insert(0, str(EXAMPLE))
    try:
        from guide_compare.algorithm import GuideCompare

        yield GuideCompare()
    finally:
        sys.path.remove(str(EXAMPLE))
        for name in [m for m in sys.modules if m == "guide_compare" or m.startswith("guide_compare.")]:
            del sys.modules[name]


def _part(height: int = 120, width: int = 160, value: int = 170) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    gray = (value + 10 * np.sin(xs / 9.0) + 5 * np.cos(ys / 7.0)).astype(np.uint8)
    return np.stack([gray] * 3, axis=2)


def test_identical_and_merely_brighter_images_are_ok(algorithm: Any) -> None:
    guide = _part()
    assert algorithm.execute(1, "", guide.copy(), guide, [])["data"]["result_status"] == "OK"
    brighter = np.clip(guide.astype(np.int32) * 1.15, 0, 255).astype(np.uint8)
    assert algorithm.execute(1, "", brighter, guide, [])["data"]["result_status"] == "OK"


def test_a_missing_feature_is_reported_where_it_is(algorithm: Any) -> None:
    guide = _part()
    guide[30:50, 100:124] = 20  # a dark screw head in the reference
    cur = _part()  # ... missing in the current part
    result = algorithm.execute(1, "screws", cur, guide, [])
    data = result["data"]
    assert data["result_status"] == "NG" and data["ng_reason"].startswith("screws: 1 region")
    rect = data["defect_rects"][0]
    assert rect["x"] <= 100 and rect["x"] + rect["width"] >= 124
    assert rect["y"] <= 30 and rect["y"] + rect["height"] >= 50 and 0 < rect["score"] <= 1


def test_guide_info_limits_the_comparison_and_labels_defects(algorithm: Any) -> None:
    guide = _part()
    cur = guide.copy()
    cur[10:26, 10:26] = 255  # outside the listed area: ignored
    cur[80:96, 120:136] = 0  # inside it
    info = [{"label": "connector", "posList": [{"x": 100, "y": 60, "width": 60, "height": 60}]}]
    data = algorithm.execute(2, "", cur, guide, info)["data"]
    assert [r["label"] for r in data["defect_rects"]] == ["connector"]
    assert data["position_rects"] == [{"x": 100, "y": 60, "width": 60, "height": 60, "label": "connector"}]


def test_different_sizes_are_an_error_with_a_code(algorithm: Any) -> None:
    result = algorithm.execute(1, "", _part(100, 160), _part(), [])
    assert result["status"] == "ERROR" and result["error_code"] == "1002" and "same size" in result["message"]


def test_many_differences_are_capped_at_20(algorithm: Any) -> None:
    guide = _part(200, 320)
    cur = guide.copy()
    for i in range(40):
        y, x = 8 + (i // 8) * 40, 8 + (i % 8) * 40
        cur[y:y + 16, x:x + 16] = 0
    data = algorithm.execute(1, "", cur, guide, [])["data"]
    assert data["result_status"] == "NG" and len(data["defect_rects"]) == 20
    assert "40 region(s)" in data["ng_reason"]
