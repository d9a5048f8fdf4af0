"""Normalise and check what a worker returned for a call.

A worker's reply is trusted for nothing: an algorithm that returns garbage (no verdict, NG without a
reason, 500 defect rectangles, rectangles without a width) turns into a clear ERROR result with code
1014 ``invalid_result`` and every issue listed, never an exception. Error replies keep the worker's
own ``error_code`` and name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from procvision_algorithm_sdk.errors import ErrorCode, error_name
from procvision_algorithm_sdk.schema import (
    Issue,
    check_execute_result,
    check_info,
    check_pre_result,
    issues_to_dicts,
)

#: Protocol echo fields the adapter adds to ``data``; not part of the algorithm's result.
_ECHO_FIELDS = ("phase", "step_index")
#: An invalid result's raw data is attached for debugging only up to this JSON size.
RAW_DATA_LIMIT_BYTES = 16 * 1024
#: How many issues the message names (all of them are in ``data.issues``).
MESSAGE_ISSUES = 3


class OutcomeLike(Protocol):
    """The part of the supervisor's ``CallOutcome`` this module reads."""

    status: str
    message: str
    data: Any
    error_code: str | None
    error_name: str | None


@dataclass
class NormalisedResult:
    """A checked result: ``status`` is "OK" or "ERROR"; ``issues`` is non-empty only for 1014."""

    status: str
    message: str
    data: dict[str, Any]
    error_code: str | None = None
    error_name: str | None = None
    issues: list[dict[str, str]] = field(default_factory=list)


def _strip_echo(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in _ECHO_FIELDS}


def _raw_excerpt(data: Any) -> Any:
    try:
        text = json.dumps(data, default=repr)
    except (TypeError, ValueError):
        return repr(data)[:RAW_DATA_LIMIT_BYTES]
    if len(text) <= RAW_DATA_LIMIT_BYTES:
        return data
    return text[:RAW_DATA_LIMIT_BYTES] + "...(truncated)"


def invalid_result(phase: str, issues: list[Issue], raw: Any) -> NormalisedResult:
    """The ERROR result for a reply that failed the schema check."""
    named = "; ".join(str(i) for i in issues[:MESSAGE_ISSUES])
    more = f" (and {len(issues) - MESSAGE_ISSUES} more)" if len(issues) > MESSAGE_ISSUES else ""
    what = {"execute": "execute()", "pre": "pre_execute()", "info": "get_info()"}.get(phase, phase)
    message = (f"the algorithm's {what} returned an invalid result: {named}{more}; "
               "fix the algorithm to return the documented result fields")
    listed = issues_to_dicts(issues)
    return NormalisedResult(status="ERROR", message=message,
                            data={"issues": listed, "raw": _raw_excerpt(raw)},
                            error_code=ErrorCode.INVALID_RESULT.value,
                            error_name=ErrorCode.INVALID_RESULT.error_name, issues=listed)


def _error_result(outcome: OutcomeLike, data: dict[str, Any]) -> NormalisedResult:
    code = str(outcome.error_code) if outcome.error_code not in (None, "") else ErrorCode.UNKNOWN_ERROR.value
    name = outcome.error_name or error_name(code)
    message = outcome.message if isinstance(outcome.message, str) and outcome.message else (
        f"the call failed with error {code} {name}")
    return NormalisedResult(status="ERROR", message=message, data=data, error_code=code, error_name=name)


def normalise(phase: str, outcome: OutcomeLike, max_defects: int) -> NormalisedResult:
    """Check ``outcome`` (a worker's reply to a ``phase`` call) and return the result to hand out.

    - ERROR replies keep the worker's error code and name (1000 unknown_error if it sent none);
    - OK replies are checked against the SDK schema for the phase (``execute``: result_status,
      ng_reason and defect_rects on NG, at most ``max_defects`` rectangles with x/y/width/height;
      ``pre``: calibration rectangles; ``info``: the get_info() document);
    - anything else (an unknown status, data that is not an object) is 1014 invalid_result.
    """
    raw_data = outcome.data
    if raw_data is None:
        raw_data = {}
    status = outcome.status
    if status == "ERROR":
        data = _strip_echo(raw_data) if isinstance(raw_data, dict) else {"raw": _raw_excerpt(raw_data)}
        return _error_result(outcome, data)
    if not isinstance(raw_data, dict):
        return invalid_result(phase, [Issue("data", f"must be an object, got {type(raw_data).__name__}")],
                              raw_data)
    data = _strip_echo(raw_data)
    message = outcome.message if isinstance(outcome.message, str) else ""
    as_returned: dict[str, Any] = {"status": status, "message": message, "data": data}
    if outcome.error_code not in (None, ""):
        as_returned["error_code"] = outcome.error_code
    if phase == "execute":
        issues = check_execute_result(as_returned, max_defects=max_defects)
    elif phase == "pre":
        issues = check_pre_result(as_returned)
    elif phase == "info":
        issues = [i for i in check_pre_result({"status": status, "message": message})]
        info = data.get("info")
        # Step 0 is accepted: the public SDK 0.0.7 init template numbers its step 0.
        issues += [Issue(f"info.{i.path}" if i.path else "info", i.message)
                   for i in check_info(info, first_step_index=0)]
    else:
        issues = [Issue("phase", f"unknown phase {phase!r}")]
    if issues:
        return invalid_result(phase, issues, raw_data)
    code = str(outcome.error_code) if outcome.error_code not in (None, "") else None
    name = (outcome.error_name or error_name(code)) if code is not None else None
    return NormalisedResult(status="OK", message=message, data=data, error_code=code, error_name=name)
