"""The wheel cache the tests build packages from (``.cache/wheels``, git-ignored).

Downloading happens once per machine (``python -m tests.support.wheels``, run by ``./dev test``);
after that every test runs offline. Wheels are fetched for the interpreter running the tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "wheels"
PUBLIC_SDK = REPO / ".cache" / "public-sdk"

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


def ensure() -> Path:
    """Make sure the cache holds every wheel the tests need; return its folder."""
    marker = CACHE / f".complete-py{sys.version_info.major}{sys.version_info.minor}"
    if not marker.exists():
        _download(CACHE, RUNTIME_REQUIREMENTS)
        marker.touch()
    for python, requirements in OTHER_PYTHONS.items():
        other = CACHE / f".complete-other-py{python.replace('.', '')}"
        if not other.exists():
            _download(CACHE, requirements, python=python)
            other.touch()
    for version in PUBLIC_SDK_VERSIONS:
        dest = PUBLIC_SDK / version
        done = dest / ".complete"
        if not done.exists():
            _download(dest, [f"procvision_algorithm_sdk=={version}"])
            done.touch()
    return CACHE


if __name__ == "__main__":
    from tests.support.system_packages import ensure_bubblewrap

    print(ensure())
    print(ensure_bubblewrap() or "bubblewrap: not available (the worker sandbox tests will fail)")
