"""``validate`` checks for execute-only algorithms (public SDK 0.3.x style): one ``execute`` per step
with a current and a guide image, in-process or through a real adapter."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import ProcVisionError
from ..manifest import Manifest
from ..schema import check_execute_result
from .drivers import AdapterDriver, DriverError
from .report import Report

#: (step_index, step_desc, cur_image, guide_image, guide_info) -> what execute returned.
ExecuteCall = Callable[[int, str, np.ndarray, np.ndarray, list[Any]], Any]


def smoke_steps(manifest: Manifest) -> list[tuple[int, str]]:
    """(index, name) of each step the manifest declares, or step 1 when it declares none."""
    steps = [(int(s.get("index", 1)), str(s.get("name") or "")) for s in manifest.steps
             if isinstance(s.get("index", 1), int)]
    return steps or [(1, "")]


def guide_for(image: np.ndarray) -> np.ndarray:
    """The guide image of the smoke test: the smoke image itself (a part that matches its reference)."""
    return np.ascontiguousarray(image).copy()


def smoke_execute_only(call: ExecuteCall, manifest: Manifest, image: np.ndarray, report: Report) -> None:
    """One ``execute`` per declared step on (image, guide image); each result's schema checked."""
    guide = guide_for(image)
    for index, desc in smoke_steps(manifest):
        name = f"execute[step {index}]"
        try:
            result = call(index, desc, image, guide, [])
        except DriverError as exc:
            report.fail(name, str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - the algorithm's own bug is what this check reports
            report.fail(name, f"raised {type(exc).__name__}: {exc}")
            continue
        issues = check_execute_result(result)
        if issues:
            report.fail(name, "\n".join(str(i) for i in issues))
        elif result.get("status") != "OK":
            report.fail(name, f"returned ERROR on the smoke images: {result.get('message', '')} "
                              f"(error_code {result.get('error_code', '?')})")
        else:
            data = result.get("data") or {}
            verdict = data.get("result_status")
            report.pass_(name, f"{verdict}" if verdict == "OK" else
                         f"NG: {data.get('ng_reason')} ({len(data.get('defect_rects') or [])} defect rect(s))")


def in_process_call(algorithm: Any) -> ExecuteCall:
    """Call ``algorithm.execute`` directly, turning SDK errors into ERROR results as the adapter does."""
    def call(index: int, desc: str, cur: np.ndarray, guide: np.ndarray, guide_info: list[Any]) -> Any:
        try:
            return algorithm.execute(index, desc, cur, guide, guide_info)
        except ProcVisionError as exc:
            return {"status": "ERROR", "message": exc.message, "error_code": exc.error_code, "data": {}}
    return call


def adapter_call(driver: AdapterDriver) -> ExecuteCall:
    """Send execute-only calls through ``driver``, both images in shared memory segments."""
    from ..shared_memory import ImageSegment

    def call(index: int, desc: str, cur: np.ndarray, guide: np.ndarray, guide_info: list[Any]) -> Any:
        with ImageSegment.create_array(cur) as cur_seg, ImageSegment.create_array(guide) as guide_seg:
            return driver.call_execute_only(index, desc, cur_seg.id, cur_seg.image_meta(), guide_seg.id,
                                            guide_seg.image_meta(), guide_info)
    return call
