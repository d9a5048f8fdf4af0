"""The one conversion of runner values to plain JSON values (API bodies, problem details, state files)."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Any


def jsonable(value: Any) -> Any:
    """Dataclasses (through their ``to_dict`` if they have one), enums (their value), paths and
    containers as plain JSON values; anything else as its ``str``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict):
            return jsonable(to_dict())
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return jsonable(to_dict())
    return str(value)
