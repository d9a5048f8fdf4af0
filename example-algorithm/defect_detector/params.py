"""The steps this algorithm declares and validation of ``user_params`` against them."""

from __future__ import annotations

from typing import Any

STEPS: list[dict[str, Any]] = [
    {
        "index": 1,
        "name": "locate",
        "description": "Check the part is present and lit: mean brightness inside the region of interest",
        "params": [
            {"key": "roi", "type": "rect", "required": False,
             "description": "region of interest {x, y, width, height} in pixels; whole image when omitted"},
            {"key": "min_brightness", "type": "float", "default": 60.0, "min": 0.0, "max": 255.0,
             "unit": "grey level", "description": "NG (part missing or lamp off) below this mean level"},
        ],
    },
    {
        "index": 2,
        "name": "inspect",
        "description": "Find dark defects inside the region of interest",
        "params": [
            {"key": "roi", "type": "rect", "required": False,
             "description": "region of interest {x, y, width, height} in pixels; whole image when omitted"},
            {"key": "min_area", "type": "int", "default": 40, "min": 1, "max": 1000000, "unit": "px",
             "description": "smallest defect reported, in full-resolution pixels"},
            {"key": "dark_threshold", "type": "float", "default": 0.6, "min": 0.05, "max": 0.95,
             "description": "a pixel is dark below this fraction of the region's mean brightness"},
            {"key": "mode", "type": "enum", "default": "fast", "choices": ["fast", "precise"],
             "description": "fast searches a 4x smaller image, precise a 2x smaller one"},
        ],
    },
]


class ParamError(ValueError):
    """A user parameter is missing, of the wrong type or out of range."""


def _number(key: str, value: Any, kind: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(f"{key} must be a number, got {value!r}")
    if kind == "int" and float(value) != int(value):
        raise ParamError(f"{key} must be an integer, got {value!r}")
    return float(value)


def _rect(key: str, value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ParamError(f"{key} must be an object {{x, y, width, height}}, got {value!r}")
    out = {}
    for field in ("x", "y", "width", "height"):
        v = value.get(field)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or float(v) != int(v):
            raise ParamError(f"{key}.{field} must be a non-negative integer, got {v!r}")
        out[field] = int(v)
    if out["width"] == 0 or out["height"] == 0:
        raise ParamError(f"{key} must have a positive width and height")
    return out


def step_spec(step_index: int) -> dict[str, Any]:
    for step in STEPS:
        if step["index"] == step_index:
            return step
    raise ParamError(f"step_index {step_index} does not exist (steps: {[s['index'] for s in STEPS]})")


def validate_params(step_index: int, user_params: Any) -> dict[str, Any]:
    """Checked parameters of a step with defaults filled in. Raises ParamError naming the key."""
    spec = step_spec(step_index)
    if user_params is None:
        user_params = {}
    if not isinstance(user_params, dict):
        raise ParamError(f"user_params must be an object, got {type(user_params).__name__}")
    known = {p["key"]: p for p in spec["params"]}
    unknown = sorted(set(user_params) - set(known))
    if unknown:
        raise ParamError(f"unknown parameter(s) for step {step_index} ({spec['name']}): {', '.join(unknown)}; "
                         f"expected {', '.join(known)}")
    out: dict[str, Any] = {}
    for key, p in known.items():
        if key not in user_params or user_params[key] is None:
            if p.get("required"):
                raise ParamError(f"{key} is required")
            if "default" in p:
                out[key] = p["default"]
            continue
        value = user_params[key]
        kind = p["type"]
        if kind in ("int", "float"):
            number = _number(key, value, kind)
            if "min" in p and number < p["min"] or "max" in p and number > p["max"]:
                raise ParamError(f"{key}={value} is outside [{p.get('min')}, {p.get('max')}]")
            out[key] = int(number) if kind == "int" else number
        elif kind == "enum":
            if value not in p["choices"]:
                raise ParamError(f"{key} must be one of {p['choices']}, got {value!r}")
            out[key] = value
        elif kind == "rect":
            out[key] = _rect(key, value)
    return out
