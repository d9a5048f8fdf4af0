"""A project folder on disk: its manifest, its requirements, and importing its entry point in-process."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..manifest import Manifest, ManifestError, load_manifest

MANIFEST = "manifest.json"
REQUIREMENTS = "requirements.txt"
SDK_NAMES = ("procvision-algorithm-sdk", "procvision_algorithm_sdk", "procvision.algorithm.sdk")


class UsageError(Exception):
    """The command line asks for something impossible (exit code 2)."""


def project_dir(path: str | Path) -> Path:
    """The resolved project folder; UsageError if it does not exist."""
    p = Path(path).expanduser().resolve()
    if not p.is_dir():
        raise UsageError(f"project folder not found: {p}")
    return p


def read_manifest(project: Path, *, pids_required: bool = True) -> Manifest:
    """The project's validated manifest. Raises ManifestError naming the field.

    ``pids_required=False`` accepts a manifest without ``supported_pids`` (execute-only projects,
    as the public SDK 0.3.x writes them).
    """
    path = project / MANIFEST
    if not path.is_file():
        raise ManifestError("", f"not found in {project} (every project needs a manifest.json at its root)")
    return load_manifest(path, pids_required=pids_required)


def requirement_lines(text: str) -> list[str]:
    """Non-empty, non-comment lines of a requirements file, with inline comments removed."""
    lines = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def is_sdk_requirement(line: str) -> bool:
    """True if a requirement line names this SDK (in any spelling of its name)."""
    name = line.replace("_", "-").replace(".", "-").lower()
    for sep in ("[", "=", "<", ">", "!", "~", ";", " ", "@"):
        name = name.split(sep, 1)[0]
    return name.strip() == "procvision-algorithm-sdk"


def default_params(step: dict[str, Any]) -> dict[str, Any]:
    """``{key: default}`` for every parameter of a ``get_info()`` step that declares a default."""
    params = step.get("params") or []
    return {p["key"]: p["default"] for p in params
            if isinstance(p, dict) and isinstance(p.get("key"), str) and "default" in p}


def step_indexes(info: Any) -> list[int]:
    """The step indexes ``get_info()`` declares (``[1]`` if it declares none)."""
    steps = info.get("steps") if isinstance(info, dict) else None
    indexes = sorted({s["index"] for s in steps or [] if isinstance(s, dict) and isinstance(s.get("index"), int)})
    return indexes or [1]


def step_spec(info: Any, index: int) -> dict[str, Any]:
    steps = info.get("steps") if isinstance(info, dict) else None
    for s in steps or []:
        if isinstance(s, dict) and s.get("index") == index:
            return s
    return {}


def _module_paths(module: Any) -> list[str]:
    paths = [getattr(module, "__file__", None) or ""]
    paths += [str(p) for p in getattr(module, "__path__", []) or []]
    return [p for p in paths if p]


def _from_project(module: Any, project: Path) -> bool:
    root = str(project) + os.sep
    return any(os.path.abspath(p).startswith(root) for p in _module_paths(module))


def _forget_modules(top: str, project: Path) -> None:
    for name in list(sys.modules):
        if (name == top or name.startswith(top + ".")) and _from_project(sys.modules[name], project):
            del sys.modules[name]


@contextlib.contextmanager
def imported_from(project: Path, module: str) -> Iterator[Any]:
    """Import ``module`` with ``project`` first on ``sys.path``; undo both afterwards.

    The project's modules are dropped again afterwards, so checking several projects in one
    process never mixes their code. A top-level name already taken by a module from elsewhere
    (the SDK, numpy, the standard library...) is an error: the worker would load that one too.
    """
    top = module.split(".", 1)[0]
    _forget_modules(top, project)
    taken = sys.modules.get(top)
    if taken is not None:
        where = (_module_paths(taken) or ["built in"])[0]
        raise ImportError(f"the top-level name {top!r} is already used by another module ({where}); "
                          "rename the project's package")
    entry = str(project)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()
    try:
        yield importlib.import_module(module)
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)
        _forget_modules(top, project)


def resolve_pid(requested: str | None, supported: list[str]) -> str | None:
    """The product id to smoke-test: the requested one, else the first supported one."""
    if requested:
        return requested
    return supported[0] if supported else None
