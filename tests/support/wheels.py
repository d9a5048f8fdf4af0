"""The wheel cache the tests build packages from (``.cache/wheels``, git-ignored).

Downloading happens once per machine (``python -m tests.support.wheels``, run by ``./dev test``);
after that every test runs offline. Wheels are fetched for the interpreter running the tests.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "wheels"
PUBLIC_SDK = REPO / ".cache" / "public-sdk"
#: The runner's own dependency wheels for this machine's target, for the station bundle test.
RUNNER_WHEELS = REPO / ".cache" / "runner-wheels"
#: The wheel platform the bundle test builds for (this machine's architecture).
BUNDLE_PLATFORM = f"manylinux_2_28_{platform.machine()}"

#: What algorithm packages in the tests depend on.
RUNTIME_REQUIREMENTS = ["numpy", "pillow"]
#: Wheels for other interpreters (tests that install a package for another Python, e.g. 3.12).
OTHER_PYTHONS = {"3.12": ["numpy"]}
#: Public ProcVision SDK releases the compatibility tests run (each with its own deps).
PUBLIC_SDK_VERSIONS = ["0.0.7", "0.3.2"]


def _download(dest: Path, requirements: list[str], timeout: float = 600.0, python: str | None = None) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    py = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
           "--only-binary=:all:", "--python-version", py, "--dest", str(dest), *requirements]
    subprocess.run(cmd, check=True, timeout=timeout)


def runner_requirements() -> list[str]:
    """The runner's dependencies from pyproject.toml, without the SDK (built from this repository)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [r for r in project["dependencies"] if not r.replace("_", "-").startswith("procvision-algorithm-sdk")]


def ensure_runner_wheels() -> Path:
    """The runner's dependency wheels for this Python on BUNDLE_PLATFORM (what a bundle needs)."""
    from procvision_algorithm_sdk.cli.targets import expand_platform

    requirements = runner_requirements()
    key = "-".join(sorted(requirements))
    marker = RUNNER_WHEELS / f".complete-py{sys.version_info.major}{sys.version_info.minor}-{BUNDLE_PLATFORM}"
    if marker.exists() and marker.read_text(encoding="utf-8") == key:
        return RUNNER_WHEELS
    _say(f"downloading the runner's dependency wheels into {RUNNER_WHEELS} (for the bundle test)")
    extra = ["--implementation", "cp", "--abi", f"cp{sys.version_info.major}{sys.version_info.minor}"]
    for plat in expand_platform(BUNDLE_PLATFORM):
        extra += ["--platform", plat]
    _download(RUNNER_WHEELS, [*extra, *requirements])
    marker.write_text(key, encoding="utf-8")
    return RUNNER_WHEELS


def _say(message: str) -> None:
    sys.stderr.write(f"dev: {message}\n")
    sys.stderr.flush()


def ensure() -> Path:
    """Make sure the cache holds every wheel the tests need; return its folder."""
    marker = CACHE / f".complete-py{sys.version_info.major}{sys.version_info.minor}"
    if not marker.exists():
        _say(f"downloading test wheels ({', '.join(RUNTIME_REQUIREMENTS)}) into {CACHE} (first run only)")
        _download(CACHE, RUNTIME_REQUIREMENTS)
        marker.touch()
    ensure_runner_wheels()
    for python, requirements in OTHER_PYTHONS.items():
        other = CACHE / f".complete-other-py{python.replace('.', '')}"
        if not other.exists():
            _say(f"downloading test wheels for Python {python} ({', '.join(requirements)})")
            _download(CACHE, requirements, python=python)
            other.touch()
    for version in PUBLIC_SDK_VERSIONS:
        dest = PUBLIC_SDK / version
        done = dest / ".complete"
        if not done.exists():
            _say(f"downloading the public SDK {version} for the compatibility tests")
            _download(dest, [f"procvision_algorithm_sdk=={version}"])
            done.touch()
    return CACHE


if __name__ == "__main__":
    from tests.support.system_packages import ensure_bubblewrap

    print(ensure())
    print(ensure_bubblewrap() or "bubblewrap: not available (the worker sandbox tests will fail)")
