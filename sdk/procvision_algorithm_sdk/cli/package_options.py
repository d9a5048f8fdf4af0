"""What to package and for which target, from ``procvision-cli package`` options or the public
``package()`` function (whose options differ from ours), resolved the same way for both."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .project import UsageError, project_dir, read_manifest

#: Why we refuse the public packager's runtime embedding (it copies a Windows embeddable Python).
NO_EMBED = ("embedding a Python runtime (--embed-python / --python-runtime / --runtime-python-version / "
            "--runtime-abi) is not supported: the runner builds each package's venv from an interpreter "
            "installed on the station; leave these options out")
NO_SKIP_DOWNLOAD = ("--skip-download is not supported: the runner installs offline, so the zip must carry every "
                    "wheel; pass --wheels-from DIR to package wheels you already have (with --offline to never "
                    "use an index)")


@dataclass
class PackageRequest:
    """One package build. ``None`` means: ``.procvision_env.json`` of the project, else this machine."""

    project: str
    output: str | None = None  # a folder, or a path ending in .zip
    requirements: str | None = None
    wheels_platform: str | None = None
    platforms: list[str] = field(default_factory=list)
    python_version: str | None = None
    implementation: str | None = None
    abi: str | None = None
    skip_download: bool = False
    embed_python: bool = False
    runtime: str | None = None
    wheels_from: Sequence[str] = ()
    offline: bool = False
    pip_timeout: float = 900.0


def _env_defaults(project: Path) -> dict[str, object]:
    from .targets import ENV_FILE

    path = project / ENV_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class PackagePlan:
    """A request resolved and checked: everything a build needs, found before anything slow runs."""

    project: Path
    target: object
    out_dir: Path
    zip_name: str | None
    requirements: Path | None
    wheels_from: list[Path]
    offline: bool
    pip_timeout: float


def plan_package(request: PackageRequest) -> PackagePlan:
    """Resolve and check ``request`` without downloading or running anything, so a bad option, a
    missing ``packaging`` or a manifest whose ``python_requires`` excludes the target fails at once.
    Raises UsageError, PackageError or ManifestError."""
    from .package import PackageError, check_python_requires

    if request.embed_python or request.runtime:
        raise UsageError(NO_EMBED)
    if request.skip_download:
        raise UsageError(NO_SKIP_DOWNLOAD)
    try:
        from .targets import TargetError, best_platform, make_target
    except ImportError:
        raise PackageError("procvision-cli package needs the 'packaging' library: pip install "
                           "'procvision-algorithm-sdk[cli]' (or pip install packaging)") from None
    project = project_dir(request.project)
    env = _env_defaults(project)
    platforms = list(request.platforms) + ([request.wheels_platform] if request.wheels_platform else [])
    if not platforms and isinstance(env.get("wheels_platform"), str):
        platforms = [str(env["wheels_platform"])]
    version = request.python_version or (str(env["python_version"]) if isinstance(env.get("python_version"), str)
                                         else f"{sys.version_info.major}.{sys.version_info.minor}")
    implementation = request.implementation or str(env.get("implementation") or "cp")
    abi = request.abi or (str(env["abi"]) if isinstance(env.get("abi"), str) and not request.python_version else None)
    try:
        target = make_target(version, implementation, abi, platforms or [best_platform()])
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    check_python_requires(read_manifest(project, pids_required=False), target)
    wheels_from = [Path(d).expanduser().resolve() for d in request.wheels_from]
    missing = [str(d) for d in wheels_from if not d.is_dir()]
    if missing:
        raise UsageError(f"--wheels-from folder not found: {', '.join(missing)}")
    out_dir, zip_name = project / "dist", None
    if request.output:
        out = Path(request.output).expanduser().resolve()
        out_dir, zip_name = (out.parent, out.name) if out.suffix.lower() == ".zip" else (out, None)
    requirements = Path(request.requirements).expanduser().resolve() if request.requirements else None
    return PackagePlan(project, target, out_dir, zip_name, requirements, wheels_from, request.offline,
                       request.pip_timeout)


def build_planned(plan: PackagePlan, log: Callable[[str], None]) -> Path:
    """Build the zip ``plan`` describes; its path. Raises PackageError (the build failed) or ManifestError."""
    from .package import build_package

    return build_package(plan.project, plan.out_dir, plan.target, wheels_from=plan.wheels_from,
                         offline=plan.offline, pip_timeout=plan.pip_timeout, log=log,
                         requirements=plan.requirements, zip_name=plan.zip_name)


def run_package(request: PackageRequest, log: Callable[[str], None]) -> Path:
    """Build the zip; its path. Raises UsageError (bad options), PackageError (the build failed,
    or ``packaging`` is missing) or ManifestError."""
    return build_planned(plan_package(request), log)
