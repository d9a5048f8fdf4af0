"""Schema checks for what algorithms return: ``get_info()``, ``pre_execute`` and ``execute`` results.

Each check returns a list of ``Issue`` (empty = valid) rather than raising, so a report can show
every problem at once. Used by ``procvision-cli validate``, the install smoke test and the runner's
result normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .manifest import Manifest

PARAM_TYPES = ("int", "float", "rect", "enum", "bool", "string")
STATUSES = ("OK", "ERROR")
RESULT_STATUSES = ("OK", "NG")
RECT_FIELDS = ("x", "y", "width", "height")
DEFAULT_MAX_DEFECTS = 20


@dataclass(frozen=True)
class Issue:
    """One problem: where (a JSON path such as ``data.defect_rects[3].width``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_rect(rect: Any, path: str) -> list[Issue]:
    """A rectangle ``{x, y, width, height, label?, score?}`` with non-negative size."""
    if not isinstance(rect, dict):
        return [Issue(path, "must be an object {x, y, width, height}")]
    issues = []
    for key in RECT_FIELDS:
        if key not in rect:
            issues.append(Issue(f"{path}.{key}", "is required"))
        elif not _is_number(rect[key]):
            issues.append(Issue(f"{path}.{key}", "must be a number"))
        elif key in ("width", "height") and rect[key] < 0:
            issues.append(Issue(f"{path}.{key}", "must not be negative"))
    if "label" in rect and not isinstance(rect["label"], str):
        issues.append(Issue(f"{path}.label", "must be a string"))
    if "score" in rect and not _is_number(rect["score"]):
        issues.append(Issue(f"{path}.score", "must be a number"))
    return issues


def _check_param(param: Any, path: str) -> list[Issue]:
    if not isinstance(param, dict):
        return [Issue(path, "must be an object")]
    issues = []
    if not isinstance(param.get("key"), str) or not param.get("key"):
        issues.append(Issue(f"{path}.key", "must be a non-empty string"))
    ptype = param.get("type")
    if ptype not in PARAM_TYPES:
        issues.append(Issue(f"{path}.type", f"must be one of {', '.join(PARAM_TYPES)}, got {ptype!r}"))
    if ptype == "enum":
        choices = param.get("choices")
        if not isinstance(choices, list) or not choices:
            issues.append(Issue(f"{path}.choices", "an enum parameter needs a non-empty choices list"))
    for bound in ("min", "max"):
        if bound in param and not _is_number(param[bound]):
            issues.append(Issue(f"{path}.{bound}", "must be a number"))
    if _is_number(param.get("min")) and _is_number(param.get("max")) and param["min"] > param["max"]:
        issues.append(Issue(path, "min is greater than max"))
    if "required" in param and not isinstance(param["required"], bool):
        issues.append(Issue(f"{path}.required", "must be true or false"))
    return issues


def check_info(info: Any, manifest: Manifest | None = None, *, first_step_index: int = 1) -> list[Issue]:
    """``get_info()``: fields and types, and agreement with the manifest when given.

    ``first_step_index`` is the lowest step index accepted: 1 for new packages; the runner passes 0,
    which the public SDK 0.0.7 ``init`` template uses.
    """
    if not isinstance(info, dict):
        return [Issue("", f"get_info() must return a dict, got {type(info).__name__}")]
    issues: list[Issue] = []
    for key in ("name", "version"):
        if not isinstance(info.get(key), str) or not info.get(key):
            issues.append(Issue(key, "must be a non-empty string"))
    pids = info.get("supported_pids")
    if not isinstance(pids, list) or not pids or not all(isinstance(p, str) for p in pids):
        issues.append(Issue("supported_pids", "must be a non-empty list of strings"))
    steps = info.get("steps", [])
    if not isinstance(steps, list):
        issues.append(Issue("steps", "must be a list"))
    else:
        seen = set()
        for i, step in enumerate(steps):
            path = f"steps[{i}]"
            if not isinstance(step, dict):
                issues.append(Issue(path, "must be an object"))
                continue
            index = step.get("index")
            if not isinstance(index, int) or isinstance(index, bool) or index < first_step_index:
                issues.append(Issue(f"{path}.index", f"must be an integer >= {first_step_index}"))
            elif index in seen:
                issues.append(Issue(f"{path}.index", f"step index {index} appears twice"))
            else:
                seen.add(index)
            if not isinstance(step.get("name"), str):
                issues.append(Issue(f"{path}.name", "must be a string"))
            params = step.get("params", [])
            if not isinstance(params, list):
                issues.append(Issue(f"{path}.params", "must be a list"))
            else:
                for j, param in enumerate(params):
                    issues.extend(_check_param(param, f"{path}.params[{j}]"))
    if manifest is not None:
        if info.get("name") != manifest.name:
            issues.append(Issue("name", f"get_info() says {info.get('name')!r}, manifest says {manifest.name!r}"))
        if info.get("version") != manifest.version:
            issues.append(Issue("version",
                                f"get_info() says {info.get('version')!r}, manifest says {manifest.version!r}"))
        if isinstance(pids, list) and sorted(map(str, pids)) != sorted(manifest.supported_pids):
            issues.append(Issue("supported_pids",
                                f"get_info() says {', '.join(map(str, pids)) or 'none'}, manifest says "
                                f"{', '.join(manifest.supported_pids) or 'none'}"))
    return issues


def _check_common(result: Any) -> list[Issue]:
    if not isinstance(result, dict):
        return [Issue("", f"must return a dict, got {type(result).__name__}")]
    issues = []
    if result.get("status") not in STATUSES:
        issues.append(Issue("status", f"must be 'OK' or 'ERROR', got {result.get('status')!r}"))
    if "message" in result and not isinstance(result["message"], str):
        issues.append(Issue("message", "must be a string"))
    if "data" in result and not isinstance(result["data"], dict):
        issues.append(Issue("data", "must be an object"))
    if "error_code" in result and result["error_code"] is not None and not isinstance(result["error_code"], (str, int)):
        issues.append(Issue("error_code", "must be a string such as '1003'"))
    return issues


def check_pre_result(result: Any) -> list[Issue]:
    """``pre_execute`` result: status/message/data; optional calibration_rects are rectangles."""
    issues = _check_common(result)
    if issues and issues[0].path == "":
        return issues
    data = result.get("data") or {}
    if isinstance(data, dict):
        rects = data.get("calibration_rects")
        if rects is not None:
            if not isinstance(rects, list):
                issues.append(Issue("data.calibration_rects", "must be a list"))
            else:
                for i, rect in enumerate(rects):
                    issues.extend(check_rect(rect, f"data.calibration_rects[{i}]"))
    return issues


def check_execute_result(result: Any, max_defects: int = DEFAULT_MAX_DEFECTS) -> list[Issue]:
    """``execute`` result: an OK status needs data.result_status; NG needs ng_reason and defect_rects."""
    issues = _check_common(result)
    if issues and issues[0].path == "":
        return issues
    if result.get("status") != "OK":
        return issues
    data = result.get("data")
    if not isinstance(data, dict):
        return issues + [Issue("data", "an OK execute result needs a data object with result_status")]
    verdict = data.get("result_status")
    if verdict not in RESULT_STATUSES:
        issues.append(Issue("data.result_status", f"must be 'OK' or 'NG', got {verdict!r}"))
    rects = data.get("defect_rects")
    if verdict == "NG":
        if not isinstance(data.get("ng_reason"), str) or not data.get("ng_reason"):
            issues.append(Issue("data.ng_reason", "is required (a non-empty string) when result_status is NG"))
        if rects is None:
            issues.append(Issue("data.defect_rects", "is required when result_status is NG"))
    if rects is not None:
        if not isinstance(rects, list):
            issues.append(Issue("data.defect_rects", "must be a list"))
        else:
            if len(rects) > max_defects:
                issues.append(Issue("data.defect_rects", f"has {len(rects)} rectangles; at most {max_defects} allowed"))
            for i, rect in enumerate(rects):
                issues.extend(check_rect(rect, f"data.defect_rects[{i}]"))
    positions = data.get("position_rects")
    if positions is not None:
        if not isinstance(positions, list):
            issues.append(Issue("data.position_rects", "must be a list"))
        else:
            for i, rect in enumerate(positions):
                issues.extend(check_rect(rect, f"data.position_rects[{i}]"))
    return issues


def issues_to_dicts(issues: list[Issue]) -> list[dict[str, str]]:
    return [{"path": i.path, "message": i.message} for i in issues]
