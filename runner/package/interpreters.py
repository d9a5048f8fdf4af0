"""Find the Python interpreter a package's venv is built with.

Discovery (as virtualenv does it): every candidate executable is asked about itself by a tiny stdlib
script run with a timeout; answers are cached by path + mtime. Candidates: ``settings.python``,
``python3.X``/``python3`` on PATH (pyenv shims skipped: the real pyenv versions are listed directly),
``~/.pyenv/versions/*/bin/python``, a few system locations, and the runner's own base interpreter.

Choice: ``settings.python`` if set; else the package's ``python_requires`` (manifest) or
``python_version`` (``.procvision_env.json``, matched on major.minor) picks among the interpreters
found, preferring the runner's own version, then the newest; else the runner's own version.
No match is RunnerError 2003 listing what was found.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, generic_tags, platform_tags

from ..errors import PackageErrorCode, RunnerError

PROBE_TIMEOUT_S = 10.0
SEARCH_GLOBS = ("~/.pyenv/versions/*/bin/python", "/usr/local/bin/python3.*", "/usr/bin/python3.*",
                "/opt/python*/bin/python3")

# Runs under any Python from 2.7 on; prints one JSON object.
_PROBE = r"""
import json, os, platform, sys, sysconfig
impl = getattr(sys, "implementation", None)
name = impl.name if impl else platform.python_implementation().lower()
def fmt(v):
    s = "%d.%d.%d" % (v.major, v.minor, v.micro)
    if v.releaselevel != "final":
        s += v.releaselevel[0] + str(v.serial)
    return s
base = getattr(sys, "_base_executable", None) or sys.executable
print(json.dumps({
  "executable": sys.executable, "base_executable": base,
  "version": list(sys.version_info[:3]), "implementation": name,
  "abiflags": getattr(sys, "abiflags", ""),
  "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
  "markers": {
    "implementation_name": name,
    "implementation_version": fmt(impl.version) if impl else platform.python_version(),
    "os_name": os.name, "platform_machine": platform.machine(), "platform_release": platform.release(),
    "platform_system": platform.system(), "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform}}))
"""


@dataclass(frozen=True)
class Interpreter:
    """A probed interpreter. ``path`` is its base (non-venv) executable."""

    path: str
    version: tuple[int, int, int]
    implementation: str
    abiflags: str = ""
    gil_disabled: bool = False
    markers: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def version_str(self) -> str:
        return ".".join(str(p) for p in self.version)

    @property
    def minor(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    def describe(self) -> str:
        return f"{self.implementation} {self.version_str} ({self.path})"

    def tags(self) -> list[Tag]:
        """Wheel tags this interpreter accepts, best first.

        Platforms are the runner's own (same machine, same libc); a different architecture under
        emulation is not supported.
        """
        py = self.version[:2]
        platforms = list(platform_tags())
        if self.implementation == "cpython":
            abi = f"cp{py[0]}{py[1]}{self.abiflags}"
            if self.gil_disabled and "t" not in abi:
                abi += "t"
            found = list(cpython_tags(py, [abi], platforms))
            interpreter = f"cp{py[0]}{py[1]}"
        else:
            interpreter = f"{self.implementation[:2]}{py[0]}{py[1]}"
            found = list(generic_tags(interpreter, [], platforms))
        found += list(compatible_tags(py, interpreter, platforms))
        return found


class InterpreterFinder:
    """Discovers and chooses interpreters; one per Installer (the probe cache lives here)."""

    def __init__(self, configured: str | None = None, probe_timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self.configured = configured
        self.probe_timeout_s = probe_timeout_s
        self._cache: dict[tuple[str, int], Interpreter | None] = {}
        self._lock = threading.Lock()

    # --- discovery -----------------------------------------------------------------------------

    def probe(self, path: str) -> Interpreter | None:
        """Ask ``path`` about itself (cached by path + mtime); None if it is not a working Python."""
        try:
            real = os.path.realpath(path)
            mtime = os.stat(real).st_mtime_ns
        except OSError:
            return None
        key = (real, mtime)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        result = self._run_probe(path)
        with self._lock:
            self._cache[key] = result
        return result

    def _run_probe(self, path: str) -> Interpreter | None:
        try:
            proc = subprocess.run([path, "-I", "-S", "-c", _PROBE], capture_output=True, timeout=self.probe_timeout_s,
                                  stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if proc.returncode != 0:
            # Python 2 has no -I: ask again without it.
            try:
                proc = subprocess.run([path, "-S", "-E", "-c", _PROBE], capture_output=True,
                                      timeout=self.probe_timeout_s, stdin=subprocess.DEVNULL, check=False)
            except (OSError, subprocess.TimeoutExpired):
                return None
            if proc.returncode != 0:
                return None
        try:
            info: dict[str, Any] = json.loads(proc.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
            version = tuple(int(v) for v in info["version"])
            base = str(info.get("base_executable") or info["executable"])
            if not os.path.isfile(base):
                base = str(info["executable"])
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        return Interpreter(path=os.path.realpath(base), version=(version[0], version[1], version[2]),
                           implementation=str(info.get("implementation", "cpython")),
                           abiflags=str(info.get("abiflags") or ""), gil_disabled=bool(info.get("gil_disabled")),
                           markers={str(k): str(v) for k, v in dict(info.get("markers") or {}).items()})

    def candidates(self) -> list[str]:
        """Executables worth probing, most preferred first, without duplicates."""
        paths: list[str] = []
        for directory in os.get_exec_path():
            if "shims" in Path(directory).parts:
                continue
            for minor in range(20, 5, -1):
                found = shutil.which(f"python3.{minor}", path=directory)
                if found:
                    paths.append(found)
            found = shutil.which("python3", path=directory)
            if found:
                paths.append(found)
        for pattern in SEARCH_GLOBS:
            paths.extend(sorted(glob.glob(os.path.expanduser(pattern)), reverse=True))
        seen: set[str] = set()
        unique = []
        for path in paths:
            real = os.path.realpath(path)
            if real not in seen and os.access(real, os.X_OK) and not real.endswith("-config"):
                seen.add(real)
                unique.append(path)
        return unique

    def runner_interpreter(self) -> Interpreter | None:
        """The interpreter running the runner (its base, not the runner's venv)."""
        return self.probe(sys.executable)

    def discover(self) -> list[Interpreter]:
        """Every working interpreter found, deduplicated by base executable."""
        found: dict[str, Interpreter] = {}
        own = self.runner_interpreter()
        if own is not None:
            found[own.path] = own
        for path in self.candidates():
            interp = self.probe(path)
            if interp is not None and interp.path not in found:
                found[interp.path] = interp
        return list(found.values())

    # --- choice --------------------------------------------------------------------------------

    def choose(self, python_requires: str | None = None, python_version: str | None = None) -> Interpreter:
        """The interpreter for a package (see the module docstring); RunnerError 2003 if none fits."""
        spec = _specifier(python_requires, python_version)
        if self.configured:
            interp = self.probe(self.configured)
            if interp is None:
                raise RunnerError(PackageErrorCode.INCOMPATIBLE_PYTHON,
                                  f"the configured interpreter {self.configured!r} (setting 'python') does not "
                                  "run; fix the setting or unset it to let the runner choose",
                                  python=self.configured)
            if spec is not None and not spec.contains(interp.version_str, prereleases=True):
                raise RunnerError(PackageErrorCode.INCOMPATIBLE_PYTHON,
                                  f"the package needs Python {spec} but the configured interpreter is "
                                  f"{interp.describe()}", python=interp.path, python_requires=str(spec))
            return interp
        own = self.runner_interpreter()
        if spec is None:
            if own is None:
                raise RunnerError(PackageErrorCode.INCOMPATIBLE_PYTHON,
                                  "the runner cannot probe its own interpreter; set 'python' in the config")
            return own
        if own is not None and spec.contains(own.version_str, prereleases=True):
            return own  # no need to probe every interpreter on the machine
        found = self.discover()
        matching = [i for i in found if spec.contains(i.version_str, prereleases=True)]
        if not matching:
            raise RunnerError(PackageErrorCode.INCOMPATIBLE_PYTHON,
                              f"the package needs Python {spec} and no such interpreter is installed; found: "
                              + (", ".join(i.describe() for i in found) or "none")
                              + ". Install a matching Python or set 'python' in the config",
                              python_requires=str(spec), found=[i.describe() for i in found])
        return max(matching, key=lambda i: i.version)


def _specifier(python_requires: str | None, python_version: str | None) -> SpecifierSet | None:
    if python_requires:
        try:
            return SpecifierSet(python_requires)
        except InvalidSpecifier as exc:
            raise RunnerError(PackageErrorCode.MANIFEST_MISSING,
                              f"manifest.json: python_requires {python_requires!r} is not a version specifier "
                              f"({exc}); write e.g. '>=3.10,<3.13'", field="python_requires") from exc
    if python_version:
        parts = str(python_version).strip().split(".")
        if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
            raise RunnerError(PackageErrorCode.INVALID_ZIP,
                              f".procvision_env.json: python_version {python_version!r} is not like '3.10'",
                              field="python_version")
        return SpecifierSet(f"=={parts[0]}.{parts[1]}.*")
    return None
