"""The Python/platform an offline package targets: wheel tags and marker environment.

Needs ``packaging`` (the ``cli`` extra); callers import this module lazily.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

from packaging import tags
from packaging.markers import default_environment

ENV_FILE = ".procvision_env.json"
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_LEGACY_BY_GLIBC = {v: k for k, v in _LEGACY_MANYLINUX.items()}


class TargetError(ValueError):
    """``.procvision_env.json`` or a command-line target is unusable."""


@dataclass(frozen=True)
class Target:
    """Python version, implementation, ABI and platforms wheels must fit."""

    python_version: str  # "3.11"
    implementation: str = "cp"
    abi: str = ""
    platforms: tuple[str, ...] = ()
    source: str = "running interpreter"
    tag_set: frozenset[tags.Tag] = field(default=frozenset(), compare=False)

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.python_version.split(".")[:2]
        return int(major), int(minor)

    def describe(self) -> str:
        plats = ", ".join(self.platforms) if self.platforms else "any"
        return f"Python {self.python_version} ({self.implementation}, abi {self.abi}, platform {plats})"

    def to_env_json(self) -> dict[str, Any]:
        """The ``.procvision_env.json`` content for this target."""
        data: dict[str, Any] = {"python_version": self.python_version, "implementation": self.implementation,
                                "abi": self.abi, "wheels_platform": self.platforms[0] if self.platforms else "any"}
        if len(self.platforms) > 1:
            data["wheels_platforms"] = list(self.platforms)
        return data

    def marker_environment(self) -> dict[str, str]:
        """Environment markers (PEP 508) as they would evaluate on the target."""
        env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
        env["python_version"] = ".".join(str(p) for p in self.version_tuple)
        parts = self.python_version.split(".")
        env["python_full_version"] = self.python_version if len(parts) >= 3 else self.python_version + ".0"
        if self.implementation == "cp":
            env["implementation_name"] = "cpython"
            env["platform_python_implementation"] = "CPython"
        elif self.implementation == "pp":
            env["implementation_name"] = "pypy"
            env["platform_python_implementation"] = "PyPy"
        plat = self.platforms[0] if self.platforms else ""
        if plat.startswith(("manylinux", "musllinux", "linux")):
            env.update(sys_platform="linux", platform_system="Linux", os_name="posix")
        elif plat.startswith("macosx"):
            env.update(sys_platform="darwin", platform_system="Darwin", os_name="posix")
        elif plat.startswith("win"):
            env.update(sys_platform="win32", platform_system="Windows", os_name="nt")
        machine = _machine(plat)
        if machine:
            env["platform_machine"] = machine
        return env


def _machine(plat: str) -> str:
    if plat in ("win_amd64",):
        return "AMD64"
    if plat == "win32":
        return "x86"
    if plat == "win_arm64":
        return "ARM64"
    for prefix in ("manylinux_", "musllinux_", "macosx_"):
        if plat.startswith(prefix):
            return plat[len(prefix):].split("_", 2)[-1]
    for legacy in _LEGACY_MANYLINUX:
        if plat.startswith(legacy + "_"):
            return plat[len(legacy) + 1:]
    if plat.startswith("linux_"):
        return plat[len("linux_"):]
    return ""


def expand_platform(plat: str) -> list[str]:
    """Every platform tag a machine of platform ``plat`` can install (older manylinux included)."""
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_(.+)", plat)
    legacy = next((k for k in _LEGACY_MANYLINUX if plat.startswith(k + "_")), None)
    if m or legacy:
        if m:
            major, minor, arch = int(m.group(1)), int(m.group(2)), m.group(3)
        else:
            assert legacy is not None
            (major, minor), arch = _LEGACY_MANYLINUX[legacy], plat[len(legacy) + 1:]
        out = []
        for k in range(minor, -1, -1):
            out.append(f"manylinux_{major}_{k}_{arch}")
            alias = _LEGACY_BY_GLIBC.get((major, k))
            if alias:
                out.append(f"{alias}_{arch}")
        return out
    m = re.fullmatch(r"musllinux_(\d+)_(\d+)_(.+)", plat)
    if m:
        major, minor, arch = int(m.group(1)), int(m.group(2)), m.group(3)
        return [f"musllinux_{major}_{k}_{arch}" for k in range(minor, -1, -1)]
    m = re.fullmatch(r"macosx_(\d+)_(\d+)_(.+)", plat)
    if m:
        return list(tags.mac_platforms((int(m.group(1)), int(m.group(2))), m.group(3)))
    return [plat]


def _tag_set(python_version: tuple[int, int], implementation: str, abi: str,
             platforms: list[str]) -> frozenset[tags.Tag]:
    expanded: list[str] = []
    for p in platforms:
        for e in expand_platform(p):
            if e not in expanded:
                expanded.append(e)
    interpreter = f"{implementation}{python_version[0]}{python_version[1]}"
    result: set[tags.Tag] = set()
    if implementation == "cp":
        result.update(tags.cpython_tags(python_version=python_version, abis=[abi], platforms=expanded))
    else:
        result.update(tags.generic_tags(interpreter=interpreter, abis=[abi], platforms=expanded))
    result.update(tags.compatible_tags(python_version=python_version, interpreter=interpreter, platforms=expanded))
    return frozenset(result)


def make_target(python_version: str, implementation: str = "cp", abi: str | None = None,
                platforms: list[str] | None = None, source: str = "command line") -> Target:
    """A target from explicit values (as given to ``package`` or read from ``.procvision_env.json``)."""
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", python_version or ""):
        raise TargetError(f"python_version must look like '3.11', got {python_version!r}")
    if not re.fullmatch(r"[a-z]{2}", implementation or ""):
        raise TargetError(f"implementation must be a two-letter tag such as 'cp', got {implementation!r}")
    major, minor = (int(x) for x in python_version.split(".")[:2])
    abi = abi or f"{implementation}{major}{minor}"
    plats = [p for p in (platforms or []) if p]
    if not plats:
        raise TargetError("at least one wheels platform is needed, e.g. 'manylinux2014_x86_64'")
    return Target(python_version, implementation, abi, tuple(plats), source,
                  _tag_set((major, minor), implementation, abi, plats))


def target_from_env_json(data: Any, source: str = ENV_FILE) -> Target:
    """A target from the decoded ``.procvision_env.json``."""
    if not isinstance(data, dict):
        raise TargetError(f"{source} must hold a JSON object")
    plats = data.get("wheels_platforms") or data.get("wheels_platform")
    if isinstance(plats, str):
        plats = [plats]
    if not isinstance(plats, list) or not all(isinstance(p, str) for p in plats):
        raise TargetError(f"{source}: wheels_platform must be a platform tag string such as 'manylinux2014_x86_64'")
    version = data.get("python_version")
    if not isinstance(version, str):
        raise TargetError(f"{source}: python_version must be a string such as '3.11'")
    impl = data.get("implementation") or "cp"
    abi = data.get("abi")
    if abi is not None and not isinstance(abi, str):
        raise TargetError(f"{source}: abi must be a string such as 'cp311'")
    return make_target(version, str(impl), abi, plats, source)


def running_target() -> Target:
    """The interpreter running this code."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    all_tags = list(tags.sys_tags())
    impl = tags.interpreter_name()
    abi = next((t.abi for t in all_tags if t.abi not in ("none", "abi3")), f"{impl}{sys.version_info.major}"
                                                                          f"{sys.version_info.minor}")
    return Target(version, impl, abi, (best_platform(),), "running interpreter", frozenset(all_tags))


def best_platform() -> str:
    """The most specific portable platform tag of this machine (e.g. ``manylinux_2_36_x86_64``)."""
    plats = [t.platform for t in tags.sys_tags() if t.platform != "any"]
    portable = [p for p in plats if p.startswith(("manylinux_", "musllinux_", "macosx_", "win"))]
    return (portable or plats or ["any"])[0]
