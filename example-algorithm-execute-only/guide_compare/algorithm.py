"""``GuideCompare``: NG when the current image of a part differs from its guide image.

Execute-only style (public SDK 0.3.x): the adapter passes both images as ``HxWx3`` uint8 RGB arrays.
``guide_info`` (``[{label, posList: [{x, y, width, height}]}]``) limits the comparison to the listed
areas and names what is found there; without it the whole image is compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from procvision_algorithm_sdk import BaseAlgorithm

from .regions import cell_means, differing_regions, to_gray

#: Side of the square cells compared, in pixels.
CELL = 8
#: A cell differs when its mean grey levels differ by more than this (0..255) after lighting is matched.
MAX_DIFFERENCE = 30.0
#: Regions smaller than this many cells are noise.
MIN_CELLS = 2
MAX_DEFECTS = 20


def _areas(guide_info: Any, shape: tuple[int, int]) -> list[tuple[str, dict[str, int]]]:
    """(label, rect) of every area listed in ``guide_info``, clipped to the image; [] if none."""
    height, width = shape
    areas = []
    for entry in guide_info if isinstance(guide_info, list) else []:
        if not isinstance(entry, dict):
            continue
        label = str(entry.get("label") or "area")
        for pos in entry.get("posList") or []:
            try:
                x, y = max(0, int(pos["x"])), max(0, int(pos["y"]))
                w, h = min(int(pos["width"]), width - x), min(int(pos["height"]), height - y)
            except (KeyError, TypeError, ValueError):
                continue
            if w > 0 and h > 0:
                areas.append((label, {"x": x, "y": y, "width": w, "height": h}))
    return areas


class GuideCompare(BaseAlgorithm):
    """Reports where the current image differs from the guide image as defects."""

    def execute(self, step_index: int, step_desc: str, cur_image: Any, guide_image: Any,
                guide_info: Any) -> dict[str, Any]:
        if cur_image is None or guide_image is None:
            return {"status": "ERROR", "error_code": "1002", "message": "the current or the guide image is missing"}
        cur, guide = to_gray(np.asarray(cur_image)), to_gray(np.asarray(guide_image))
        if cur.shape != guide.shape:
            return {"status": "ERROR", "error_code": "1002",
                    "message": f"the current image is {cur.shape[1]}x{cur.shape[0]} but the guide image is "
                               f"{guide.shape[1]}x{guide.shape[0]}; they must be the same size"}
        # Match overall lighting so a brighter or darker shot is not a defect.
        gain = float(cur.mean()) / max(float(guide.mean()), 1e-3)
        diff = np.abs(cur - guide * gain)
        areas = _areas(guide_info, cur.shape)
        mask = np.zeros(cur.shape, dtype=bool) if areas else np.ones(cur.shape, dtype=bool)
        for _, r in areas:
            mask[r["y"]:r["y"] + r["height"], r["x"]:r["x"] + r["width"]] = True
        diff_cells = cell_means(np.where(mask, diff, 0.0), CELL)
        regions = differing_regions(diff_cells, diff_cells > MAX_DIFFERENCE, CELL, cur.shape, MIN_CELLS)
        self.logger.info("compared", step_index=step_index, step_desc=step_desc, regions=len(regions),
                         gain=round(gain, 3))
        position_rects = [dict(r, label=label) for label, r in areas]
        if not regions:
            return {"status": "OK", "data": {"result_status": "OK", "defect_rects": [],
                                             "position_rects": position_rects}}
        rects = [{"x": r.x, "y": r.y, "width": r.width, "height": r.height,
                  "label": self._label(r.x, r.y, areas), "score": r.score} for r in regions[:MAX_DEFECTS]]
        where = f"{step_desc}: " if step_desc else ""
        return {"status": "OK", "data": {
            "result_status": "NG",
            "ng_reason": f"{where}{len(regions)} region(s) differ from the guide image",
            "defect_rects": rects, "position_rects": position_rects,
            "debug": {"regions": len(regions), "gain": round(gain, 3)}}}

    @staticmethod
    def _label(x: int, y: int, areas: list[tuple[str, dict[str, int]]]) -> str:
        for label, r in areas:
            if r["x"] <= x < r["x"] + r["width"] and r["y"] <= y < r["y"] + r["height"]:
                return label
        return "differs"
