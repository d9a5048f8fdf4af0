"""The ``entry_point`` and ``imports`` checks of ``validate --zip`` (and of the runner's ``validate``):
the manifest's ``module:Class`` can be imported from the archive, judged without running any of it.

``entry_point``: the module's file is in the package (``a/b.py`` or ``a/b/__init__.py`` beside
manifest.json), its source compiles, and the class name is bound at the module's top level (a class
statement, an assignment or an import). ``imports``: every module imported at import time, following
the package's own modules from the entry point, comes from the package, the standard library or a
bundled wheel (else it is a dependency missing from requirements.txt). Import errors that only
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


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.dump(test)


def _import_time_imports(tree: ast.Module, package: str) -> list[str]:
    """Dotted names of the modules imported when a module of ``package`` (its dotted package, "" at
    the top) is imported: relative imports resolved. Imports inside try blocks are left out
    (``try: import x except ImportError`` is how optional ones are written), as are those under
    ``if TYPE_CHECKING:``."""
    found: list[str] = []

    def walk(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".") if package else []
                    parts = parts[:len(parts) - (node.level - 1)] if node.level > 1 else parts
                    prefix = ".".join(parts)
                    module = ".".join(p for p in (prefix, node.module or "") if p)
                else:
                    module = node.module or ""
                if module:
                    found.append(module)
                # ``from pkg import sub`` may import the submodule pkg.sub.
                found.extend(f"{module}.{alias.name}" if module else alias.name
                             for alias in node.names if alias.name != "*")
            elif isinstance(node, ast.If) and not _is_type_checking(node.test):
                walk(node.body)
                walk(node.orelse)

    walk(tree.body)
    return found


class _Sources:
    """The package's Python files by dotted module name (``a/b.py`` and ``a/b/__init__.py`` -> a.b)."""

    def __init__(self, zf: zipfile.ZipFile, base: str) -> None:
        self.zf = zf
        self.by_module: dict[str, str] = {}
        for name in zf.namelist():
            if not name.startswith(base) or not name.endswith(".py") or name.startswith((base + "wheels/", "wheels/")):
                continue
            parts = name[len(base):-3].split("/")
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts:
                self.by_module[".".join(parts)] = name
        self.tops = {m.split(".")[0] for m in self.by_module} | {
            n[len(base):].split("/")[0] for n in zf.namelist() if n.startswith(base) and "/" in n[len(base):]}

    def tree(self, module: str) -> ast.Module | None:
        try:
            return ast.parse(self.zf.read(self.by_module[module]), filename=self.by_module[module])
        except (SyntaxError, ValueError):
            return None  # the entry_point check reports a module that does not compile


def check_imports(zf: zipfile.ZipFile, base: str, manifest: Manifest | None, wheel_entries: list[str],
                  report: Report) -> None:
    """Add the ``imports`` check: starting at the entry module, every module imported at import time
    (following the package's own modules) is in the package, the standard library or a bundled
    wheel; one that is not is an author's missing requirement."""
    stdlib = getattr(sys, "stdlib_module_names", None)
    if stdlib is None:
        report.skip(IMPORTS, "needs Python 3.10+ to know the standard library's modules")
        return
    if manifest is None:
        report.skip(IMPORTS, "needs a valid manifest.json")
        return
    sources = _Sources(zf, base)
    provided = set(stdlib) | {"__future__"}
    for entry in wheel_entries:
        try:
            provided |= _wheel_top_levels(zf, entry)
        except (ValueError, zipfile.BadZipFile, ZipProblem) as exc:
            report.fail(IMPORTS, f"{entry} cannot be read: {exc}")
            return
    missing: dict[str, list[str]] = {}
    seen: set[str] = set()
    parts = manifest.module.split(".")
    queue = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]  # its packages' __init__ run first
    while queue:
        module = queue.pop()
        if module in seen or module not in sources.by_module:
            continue
        seen.add(module)
        tree = sources.tree(module)
        if tree is None:
            continue
        is_package = sources.by_module[module].endswith("__init__.py")
        package = module if is_package else module.rpartition(".")[0]
        for name in _import_time_imports(tree, package):
            top = name.split(".")[0]
            if top in sources.tops:
                parts = name.split(".")
                # Importing a.b.c runs a/__init__.py, a/b/__init__.py and a/b/c.py.
                queue.extend(".".join(parts[:i]) for i in range(1, len(parts) + 1))
            elif top not in provided:
                missing.setdefault(top, []).append(sources.by_module[module][len(base):])
    if missing:
        lines = [f"{name} (imported by {', '.join(sorted(set(files)))})" for name, files in sorted(missing.items())]
        report.fail(IMPORTS, "modules imported at import time that neither the package, the standard library "
                             "nor a bundled wheel provides (add them to requirements.txt):\n" + "\n".join(lines))
        return
    report.pass_(IMPORTS, f"every import-time import of {len(seen)} module(s) from {manifest.module} is provided")
