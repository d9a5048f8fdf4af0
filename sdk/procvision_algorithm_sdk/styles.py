"""The two ways to write an algorithm, and how the SDK tells which one a class uses.

* ``phase`` (public SDK 0.0.x): ``get_info()``, ``pre_execute(...)`` and
  ``execute(step_index, pid, session, user_params, shared_mem_id, image_meta)``; the algorithm reads
  its image itself with ``read_image_from_shared_memory``.
* ``execute-only`` (public SDK 0.3.x): one ``execute(step_index, step_desc, cur_image, guide_image,
  guide_info)``; the adapter reads both images and passes them as arrays.

A class may declare its style with the class attribute ``execution_style = "phase"`` or
``"execute-only"``; otherwise it is detected from the parameter names of its ``execute`` (then, for
unnamed parameters, from ``pre_execute``/``get_info`` being implemented (phase), then from their
number: 6 = phase, 5 = execute-only).
"""

from __future__ import annotations

import inspect
from typing import Any

PHASE = "phase"
EXECUTE_ONLY = "execute-only"
STYLES = (PHASE, EXECUTE_ONLY)

PHASE_PARAMS = ("step_index", "pid", "session", "user_params", "shared_mem_id", "image_meta")
EXECUTE_ONLY_PARAMS = ("step_index", "step_desc", "cur_image", "guide_image", "guide_info")
_PHASE_ONLY_NAMES = frozenset(PHASE_PARAMS) - {"step_index"}
_EXECUTE_ONLY_NAMES = frozenset(EXECUTE_ONLY_PARAMS) - {"step_index"}


class StyleError(TypeError):
    """The class's authoring style cannot be told, or is declared wrongly. Says how to fix it."""


def _execute_params(execute: Any) -> tuple[list[str], bool]:
    """Names of ``execute``'s positional parameters after ``self``, and whether it takes ``*args``."""
    try:
        sig = inspect.signature(execute)
    except (TypeError, ValueError):
        return [], True
    names: list[str] = []
    var_positional = False
    for param in sig.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            names.append(param.name)
        elif param.kind is param.VAR_POSITIONAL:
            var_positional = True
    return names[1:], var_positional  # drop self


def _overrides(cls: type, name: str, base: type | None) -> bool:
    if base is None:
        return False
    return getattr(cls, name, None) is not getattr(base, name, None)


def detect_style(cls: type, base: type | None = None) -> str:
    """The style of algorithm class ``cls`` (``PHASE`` or ``EXECUTE_ONLY``). Raises StyleError.

    ``base`` is the class whose ``get_info``/``pre_execute`` are the unimplemented defaults.
    """
    declared = getattr(cls, "execution_style", None)
    if declared is not None:
        if declared not in STYLES:
            raise StyleError(f"{cls.__name__}.execution_style is {declared!r}; use 'phase' or 'execute-only'")
        return str(declared)
    names, var_positional = _execute_params(getattr(cls, "execute", None))
    if _EXECUTE_ONLY_NAMES & set(names):
        return EXECUTE_ONLY
    if _PHASE_ONLY_NAMES & set(names):
        return PHASE
    if _overrides(cls, "pre_execute", base) or _overrides(cls, "get_info", base):
        return PHASE
    if not var_positional and len(names) == len(EXECUTE_ONLY_PARAMS):
        return EXECUTE_ONLY
    if not var_positional and len(names) == len(PHASE_PARAMS):
        return PHASE
    raise StyleError(
        f"cannot tell the style of {cls.__name__}: its execute() takes ({', '.join(names) or '*args'}). "
        f"Write execute({', '.join(PHASE_PARAMS)}) for the phase style or "
        f"execute({', '.join(EXECUTE_ONLY_PARAMS)}) for the execute-only style, or declare "
        "execution_style = 'phase' or 'execute-only' on the class")
