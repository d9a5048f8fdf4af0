"""Find, import and construct the algorithm class named by the entry point."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Mapping

from ..base import BaseAlgorithm
from ..errors import ErrorCode, ProcVisionError

ENTRY_ENV = "PROC_ENTRY_POINT"
ROOT_ENV = "PROC_ALGO_ROOT"


class EntryError(ProcVisionError):
    """The algorithm could not be loaded. ``error_code`` is 1004 (no/invalid entry) or 1000."""

    default_code = ErrorCode.NOT_INITIALIZED
    fatal = True


def _manifest_entry(root: str) -> tuple[str | None, str | None]:
    path = os.path.join(root, "manifest.json")
    if not os.path.isfile(path):
        return None, None
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        raise EntryError(f"cannot read {path}: {exc}") from exc
    entry = manifest.get("entry_point") if isinstance(manifest, dict) else None
    if not isinstance(entry, str) or not entry:
        raise EntryError(f"{path} has no string 'entry_point' (expected 'module.path:ClassName')")
    return entry, path


def resolve_entry(cli_entry: str | None, env: Mapping[str, str], cwd: str) -> tuple[str, str]:
    """The entry point and where it came from: --entry, $PROC_ENTRY_POINT, then manifest.json
    in ``cwd`` and in ``$PROC_ALGO_ROOT``. Raises EntryError (1004) when none is found."""
    if cli_entry:
        return cli_entry, "--entry"
    if env.get(ENTRY_ENV):
        return env[ENTRY_ENV], f"${ENTRY_ENV}"
    roots = [cwd]
    if env.get(ROOT_ENV):
        roots.append(env[ROOT_ENV])
    for root in roots:
        entry, path = _manifest_entry(root)
        if entry and path:
            return entry, path
    raise EntryError(f"no entry point: pass --entry module:Class, set ${ENTRY_ENV}, or put manifest.json "
                     f"with 'entry_point' in {' or '.join(roots)}")


def extend_sys_path(env: Mapping[str, str], cwd: str) -> None:
    """Let the algorithm's modules import from its folder (and from $PROC_ALGO_ROOT)."""
    for root in (env.get(ROOT_ENV), cwd):
        if root:
            full = os.path.abspath(root)
            if full not in sys.path:
                sys.path.insert(0, full)


def load_algorithm(entry: str) -> BaseAlgorithm:
    """Import ``module:Class`` and construct it. Raises EntryError with 1004 or 1000."""
    module_name, sep, class_name = entry.partition(":")
    if not sep or not module_name or not class_name:
        raise EntryError(f"invalid entry point {entry!r}: expected 'module.path:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise EntryError(f"entry point {entry!r}: module {module_name!r} not found "
                             f"(sys.path[0] = {sys.path[0]!r})") from exc
        raise EntryError(f"entry point {entry!r}: importing {module_name!r} failed: "
                         f"{type(exc).__name__}: {exc}", ErrorCode.UNKNOWN_ERROR.value) from exc
    except BaseException as exc:  # noqa: BLE001 - any import-time failure is reported, SystemExit too
        raise EntryError(f"entry point {entry!r}: importing {module_name!r} failed: "
                         f"{type(exc).__name__}: {exc}", ErrorCode.UNKNOWN_ERROR.value) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise EntryError(f"entry point {entry!r}: module {module_name!r} has no attribute {class_name!r}")
    if not isinstance(cls, type) or not issubclass(cls, BaseAlgorithm):
        raise EntryError(f"entry point {entry!r}: {class_name!r} is not a subclass of "
                         "procvision_algorithm_sdk.BaseAlgorithm")
    try:
        instance = cls()
    except Exception as exc:
        raise EntryError(f"entry point {entry!r}: constructing {class_name} failed: "
                         f"{type(exc).__name__}: {exc}", ErrorCode.UNKNOWN_ERROR.value) from exc
    return instance
