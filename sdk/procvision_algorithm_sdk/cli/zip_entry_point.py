"""The ``entry_point`` and ``imports`` checks of ``validate --zip`` (and of the runner's ``validate``):
the manifest's ``module:Class`` can be imported from the archive, judged without running any of it.

The module's file must be in the package (``a/b.py`` or ``a/b/__init__.py`` beside manifest.json),
its source must compile, and the
class name must be bound at the module's top level (a class statement, an assignment or an import).
Every module the package's source imports at import time must come from the package, the standard
library or a bundled wheel (a dependency missing from requirements.txt). Import errors that only
running the code reveals are the smoke test's to find.
"""

from __future__ import annotations

import ast
import io
import sys
import zipfile

from .. import zipsafety
from ..manifest import Manifest
from ..zipsafety import ZipProblem
from .report import Report

NAME = "entry_point"


def _module_entry(names: set[str], base: str, module: str) -> tuple[str | None, str]:
    """The archive entry holding ``module``'s source, or None and why not."""
    # Folders without __init__.py import as namespace packages: only the module's own file matters.
    parts = module.split(".")
    candidates = [base + "/".join(parts) + ".py", base + "/".join(parts) + "/__init__.py"]
    for entry in candidates:
        if entry in names:
            return entry, ""
    return None, f"neither {' nor '.join(candidates)} is in the zip"


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that run at import time, including those inside top-level if/try blocks."""
    found: list[ast.stmt] = []
    for node in body:
        found.append(node)
        if isinstance(node, ast.If):
            found += _top_level(node.body) + _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            found += _top_level(node.body) + _top_level(node.orelse) + _top_level(node.finalbody)
            for handler in node.handlers:
                found += _top_level(handler.body)
    return found


def _binds(tree: ast.Module, name: str) -> bool:
    for node in _top_level(tree.body):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if (alias.asname or alias.name.split(".")[0]) == name or alias.name == "*":
                    return True
    return False


def check_entry_point(zf: zipfile.ZipFile, base: str, manifest: Manifest | None, report: Report,
                      max_bytes: int = 16 * 1024 * 1024) -> None:
    """Add the ``entry_point`` check for ``manifest`` to ``report`` (SKIP without a valid manifest)."""
    if manifest is None:
        report.skip(NAME, "needs a valid manifest.json")
        return
    names = set(zf.namelist())
    entry, why = _module_entry(names, base, manifest.module)
    if entry is None:
        report.fail(NAME, f"{manifest.entry_point} cannot be imported: {why}; fix entry_point in manifest.json "
                          "or package the module")
        return
    info = zf.getinfo(entry)
    if info.file_size > max_bytes:
        report.fail(NAME, f"{entry} is {info.file_size} bytes, over {max_bytes}: not a source file")
        return
    try:
        tree = ast.parse(zf.read(entry), filename=entry)
    except (SyntaxError, ValueError) as exc:
        report.fail(NAME, f"{entry} does not compile: {exc}")
        return
    if not _binds(tree, manifest.class_name):
        report.fail(NAME, f"{entry} defines no {manifest.class_name!r} at its top level (entry_point "
                          f"{manifest.entry_point}); fix entry_point in manifest.json")
        return
    report.pass_(NAME, f"{manifest.entry_point}: {entry} compiles and defines {manifest.class_name}")


IMPORTS = "imports"


def _wheel_top_levels(zf: zipfile.ZipFile, entry: str) -> set[str]:
    """The importable top-level names a bundled wheel provides (from its file list, never run)."""
    data = io.BytesIO(zf.read(entry))
    zipsafety.check_end_record(zipsafety.read_end_record(data), zipsafety.ZipLimits())
    tops: set[str] = set()
    with zipfile.ZipFile(data) as inner:
        for name in inner.namelist():
            parts = name.split("/")
            if parts[0].endswith(".data") and len(parts) > 3 and parts[1] in ("purelib", "platlib"):
                parts = parts[2:]
            first = parts[0]
            if not first or first.endswith((".dist-info", ".data")):
                continue
            if len(parts) == 1:  # a top-level module file: foo.py, foo.cpython-311-x86_64-linux-gnu.so
                if not first.endswith((".py", ".so", ".pyd")):
                    continue
                first = first.split(".", 1)[0]
            tops.add(first)
    return tops


def _import_time_imports(tree: ast.Module) -> set[str]:
    """Absolute top-level module names imported when the module is imported. Imports inside
    try blocks are left out (``try: import x except ImportError`` is how optional ones are written)."""
    found: set[str] = set()

    def walk(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.If):
                walk(node.body)
                walk(node.orelse)

    walk(tree.body)
    return found


def check_imports(zf: zipfile.ZipFile, base: str, wheel_entries: list[str], report: Report) -> None:
    """Add the ``imports`` check: every module the package's source imports at import time is in the
    package, the standard library or one of the bundled wheels (an author's missing requirement)."""
    stdlib = getattr(sys, "stdlib_module_names", None)
    if stdlib is None:
        report.skip(IMPORTS, "needs Python 3.10+ to know the standard library's modules")
        return
    sources = [n for n in zf.namelist() if n.startswith(base) and n.endswith(".py")
               and not n.startswith((base + "wheels/", "wheels/"))]
    local = {n[len(base):].split("/")[0].split(".")[0] for n in sources}
    provided = set(stdlib) | local | {"__future__"}
    for entry in wheel_entries:
        try:
            provided |= _wheel_top_levels(zf, entry)
        except (ValueError, zipfile.BadZipFile, ZipProblem) as exc:
            report.fail(IMPORTS, f"{entry} cannot be read: {exc}")
            return
    missing: dict[str, list[str]] = {}
    for entry in sources:
        try:
            tree = ast.parse(zf.read(entry), filename=entry)
        except (SyntaxError, ValueError):
            continue  # the entry_point check reports a module that does not compile
        for name in sorted(_import_time_imports(tree) - provided):
            missing.setdefault(name, []).append(entry[len(base):])
    if missing:
        lines = [f"{name} (imported by {', '.join(files)})" for name, files in sorted(missing.items())]
        report.fail(IMPORTS, "modules imported at import time that neither the package, the standard library "
                             "nor a bundled wheel provides (add them to requirements.txt):\n" + "\n".join(lines))
        return
    report.pass_(IMPORTS, f"every import-time import of {len(sources)} source file(s) is provided")

