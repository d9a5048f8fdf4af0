"""``DefectDetector``: a two-step inspection of bright parts for dark defects.

Step 1 ``locate`` checks the part is present and lit (mean brightness of the region of interest).
Step 2 ``inspect`` finds dark blobs (spots, scratches, holes) darker than a fraction of that
brightness. ``pre_execute`` measures the region and keeps the measurement in the session;
``execute`` decides from it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from procvision_algorithm_sdk import BaseAlgorithm, Session, read_image_from_shared_memory

from .blobs import find_dark_blobs, to_gray
from .params import STEPS, ParamError, validate_params

NAME = "example-defect-detector"
VERSION = "1.0.0"
MAX_DEFECTS = 20
#: Per-product defaults: A02 parts sit in a fixture whose dark edges must not count as defects.
PRODUCTS: dict[str, dict[str, float]] = {
    "A01": {"border_margin": 0.0},
    "A02": {"border_margin": 0.05},
}
DOWNSAMPLE = {"fast": 4, "precise": 2}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"status": "ERROR", "error_code": code, "message": message, "data": {}}


class DefectDetector(BaseAlgorithm):
    """Finds dark defects on bright parts using numpy only."""

    def get_info(self) -> dict[str, Any]:
        return {
            "name": NAME,
            "version": VERSION,
            "description": "Finds dark spots, scratches and holes on bright parts (numpy only)",
            "supported_pids": sorted(PRODUCTS),
            "steps": STEPS,
        }

    def setup(self) -> None:
        self.logger.info("defect detector ready", version=VERSION, products=sorted(PRODUCTS))

    # --- helpers --------------------------------------------------------------------------------

    def _check(self, step_index: int, pid: str, user_params: Any) -> dict[str, Any]:
        if pid not in PRODUCTS:
            raise _Rejected("1001", f"unsupported pid {pid!r}; this algorithm handles {sorted(PRODUCTS)}")
        try:
            return validate_params(step_index, user_params)
        except ParamError as exc:
            raise _Rejected("1003", f"invalid user_params: {exc}") from None

    def _roi(self, pid: str, params: dict[str, Any], height: int, width: int) -> dict[str, int]:
        roi = params.get("roi")
        if roi is None:
            margin = PRODUCTS[pid]["border_margin"]
            mx, my = int(width * margin), int(height * margin)
            roi = {"x": mx, "y": my, "width": width - 2 * mx, "height": height - 2 * my}
        x0, y0 = min(roi["x"], width), min(roi["y"], height)
        x1, y1 = min(roi["x"] + roi["width"], width), min(roi["y"] + roi["height"], height)
        if x1 - x0 < 8 or y1 - y0 < 8:
            raise _Rejected("1003", f"invalid user_params: roi {roi} leaves less than 8x8 pixels of the "
                                    f"{width}x{height} image")
        return {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}

    def _measure(self, pid: str, params: dict[str, Any], shared_mem_id: str,
                 image_meta: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        image = read_image_from_shared_memory(shared_mem_id, image_meta)
        gray = to_gray(np.asarray(image))
        roi = self._roi(pid, params, gray.shape[0], gray.shape[1])
        region = gray[roi["y"]:roi["y"] + roi["height"], roi["x"]:roi["x"] + roi["width"]]
        return region, {"roi": roi, "mean_brightness": round(float(region.mean()), 3)}

    # --- phases ---------------------------------------------------------------------------------

    def pre_execute(self, step_index: int, pid: str, session: Session, user_params: dict[str, Any],
                    shared_mem_id: str, image_meta: dict[str, Any]) -> dict[str, Any]:
        try:
            params = self._check(step_index, pid, user_params)
            _region, measured = self._measure(pid, params, shared_mem_id, image_meta)
        except _Rejected as exc:
            return _error(exc.code, exc.message)
        session.set(f"step{step_index}", measured)
        self.logger.info("region measured", session_id=session.id, step_index=step_index, pid=pid, **measured)
        return {"status": "OK", "message": f"mean brightness {measured['mean_brightness']:.1f}",
                "data": {"calibration_rects": [dict(measured["roi"], label="roi")],
                         "debug": {"mean_brightness": measured["mean_brightness"]}}}

    def execute(self, step_index: int, pid: str, session: Session, user_params: dict[str, Any],
                shared_mem_id: str, image_meta: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            params = self._check(step_index, pid, user_params)
            region, measured = self._measure(pid, params, shared_mem_id, image_meta)
        except _Rejected as exc:
            return _error(exc.code, exc.message)
        stored = session.get(f"step{step_index}")
        if isinstance(stored, dict) and stored.get("roi") == measured["roi"]:
            measured = stored  # the brightness pre_execute measured for this detection
        else:
            self.logger.warning("no pre_execute measurement for this step; measured now",
                                session_id=session.id, step_index=step_index)
        result = self._locate(params, measured) if step_index == 1 else self._inspect(params, region, measured)
        verdict = result["data"]["result_status"]
        self.logger.info("step finished", session_id=session.id, step_index=step_index, pid=pid,
                         result_status=verdict, defects=len(result["data"].get("defect_rects", [])),
                         elapsed_ms=round((time.perf_counter() - started) * 1000, 2))
        return result

    def _locate(self, params: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
        mean, limit, roi = measured["mean_brightness"], params["min_brightness"], measured["roi"]
        debug = {"mean_brightness": mean, "min_brightness": limit}
        if mean < limit:
            score = round(min(1.0, max(0.0, 1.0 - mean / max(limit, 1e-6))), 3)
            return {"status": "OK", "message": "part not found", "data": {
                "result_status": "NG",
                "ng_reason": f"part missing or underexposed: mean brightness {mean:.1f} < {limit:.1f}",
                "defect_rects": [dict(roi, label="underexposed", score=score)],
                "debug": debug}}
        return {"status": "OK", "message": "part located", "data": {
            "result_status": "OK", "defect_rects": [], "position_rects": [dict(roi, label="part")], "debug": debug}}

    def _inspect(self, params: dict[str, Any], region: np.ndarray, measured: dict[str, Any]) -> dict[str, Any]:
        mean, roi = measured["mean_brightness"], measured["roi"]
        threshold = params["dark_threshold"] * mean
        factor = DOWNSAMPLE[params["mode"]]
        blobs = find_dark_blobs(region, threshold, factor, params["min_area"])
        rects = [{"x": roi["x"] + b.x, "y": roi["y"] + b.y, "width": b.width, "height": b.height,
                  "label": "dark_spot", "score": round(min(1.0, max(0.0, 1.0 - b.mean_level / max(mean, 1e-6))), 3)}
                 for b in blobs[:MAX_DEFECTS]]
        debug = {"mean_brightness": mean, "threshold": round(threshold, 3), "downsample": factor,
                 "defects_found": len(blobs)}
        if not blobs:
            return {"status": "OK", "message": "no defects", "data": {
                "result_status": "OK", "defect_rects": [], "debug": debug}}
        largest = rects[0]
        more = f" (showing the {MAX_DEFECTS} largest)" if len(blobs) > MAX_DEFECTS else ""
        return {"status": "OK", "message": "defects found", "data": {
            "result_status": "NG",
            "ng_reason": f"{len(blobs)} dark defect(s){more}; largest {blobs[0].area} px at "
                         f"({largest['x']}, {largest['y']})",
            "defect_rects": rects,
            "debug": debug}}


class _Rejected(Exception):
    """A call the algorithm refuses, with the wire error code to return."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
