"""Install checks 1-3, before anything is written: archive safety, layout and manifest, interpreter
and wheels (decided from names and wheel metadata only). ``validate`` reports them in the SDK's shape."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from procvision_algorithm_sdk.manifest import Manifest, ManifestError, parse_manifest_bytes

from ..config import Settings
from ..errors import PackageErrorCode, RunnerError
from . import archive, layout, wheels
from .env_file import parse_env_file
from .interpreters import Interpreter, InterpreterFinder

MAX_SMALL_FILE = 1024 * 1024

Progress = Callable[[str], None]


@dataclass
class CheckedPackage:
    """What checks 1-2 learnt from the zip."""

    infos: list[zipfile.ZipInfo]
    layout: layout.PackageLayout
    manifest: Manifest
    env_config: dict[str, Any]


@dataclass
class InstallPlan:
    """What check 3 decided: interpreter and wheels."""

    interpreter: Interpreter
    resolution: wheels.Resolution


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, streamed (2001 if it cannot be read)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(archive.CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise archive.invalid(f"cannot read {path.name}: {exc.strerror or exc}", path=str(path)) from exc
    return digest.hexdigest()


class PackageChecks:
    """Checks 1-3 of one runtime root's settings (archive limits, interpreter choice)."""

    def __init__(self, settings: Settings) -> None:
        self.limits = archive.ArchiveLimits.from_settings(settings)
        self.finder = InterpreterFinder(settings.python)

    def read_package(self, zf: zipfile.ZipFile, on_pass: Progress | None = None) -> CheckedPackage:
        """Checks 1 (archive safety) and 2 (layout, manifest)."""
        stage = "zip_safety"
        try:
            infos = archive.check_entries(zf, self.limits)
            _passed(on_pass, stage)
            stage = "layout"
            found = layout.locate([i.filename for i in infos])
            _passed(on_pass, stage)
            stage = "manifest"
            by_name = {i.filename: i for i in infos}
            data = archive.read_member(zf, by_name[found.manifest], MAX_SMALL_FILE)
            try:
                # Public SDK 0.3.x manifests have no supported_pids: any pid may then be bound.
                manifest = parse_manifest_bytes(data, pids_required=False)
            except ManifestError as exc:
                raise RunnerError(PackageErrorCode.MANIFEST_MISSING, f"{exc}", field=exc.field,
                                  entry=found.manifest) from exc
            env_config: dict[str, Any] = {}
            if found.env_file:
                raw = archive.read_member(zf, by_name[found.env_file], MAX_SMALL_FILE)
                env_config = parse_env_file(raw, found.env_file)
            _passed(on_pass, stage)
        except RunnerError as exc:
            exc.details.setdefault("check", stage)
            raise
        return CheckedPackage(infos, found, manifest, env_config)

    def plan(self, zf: zipfile.ZipFile, package: CheckedPackage) -> InstallPlan:
        """Check 3: interpreter and wheels, from names and wheel metadata only (no venv)."""
        found = package.layout
        stage = "python"
        try:
            if not found.wheels_dir or not found.wheels:
                stage = "wheels"
                raise RunnerError(PackageErrorCode.WHEELS_MISSING,
                                  "the package has no wheels/ folder with .whl files; bundle every dependency "
                                  "(at least the procvision-algorithm-sdk wheel) in wheels/")
            python_version = package.env_config.get("python_version")
            interpreter = self.finder.choose(package.manifest.python_requires,
                                             str(python_version) if python_version else None)
            stage = "wheels"
            by_base = {member.rsplit("/", 1)[-1]: member for member in found.wheels}
            wheel_files = wheels.parse_wheel_names(by_base)
            requirements = self._requirements(zf, package, wheel_files)
            resolution = wheels.resolve(requirements, wheel_files, interpreter,
                                        wheels.nested_metadata_reader(zf, by_base, self.limits))
            wheels.check_hashes(requirements, resolution, wheels.nested_wheel_digest(zf, by_base))
        except RunnerError as exc:
            exc.details.setdefault("check", stage)
            raise
        return InstallPlan(interpreter, resolution)

    def _requirements(self, zf: zipfile.ZipFile, package: CheckedPackage,
                      wheel_files: list[wheels.WheelFile]) -> list[Requirement]:
        found = package.layout
        if found.requirements:
            info = next(i for i in package.infos if i.filename == found.requirements)
            text = archive.read_member(zf, info, MAX_SMALL_FILE).decode("utf-8-sig", "replace")
            reqs = wheels.parse_requirements(text, found.requirements)
        else:
            # No requirements file: install what was bundled.
            reqs = [Requirement(name) for name in sorted({w.name for w in wheel_files})]
        if wheels.SDK_DISTRIBUTION not in {canonicalize_name(r.name) for r in reqs}:
            reqs.append(Requirement(wheels.SDK_DISTRIBUTION))
        return reqs

    def validate(self, zip_path: Path) -> dict[str, Any]:
        """Checks 1-3 only (no venv, nothing written). Report in the SDK's shape:
        ``{summary: {status: PASS|FAIL, passed, failed}, checks: [{name, result, message}], ...}``."""
        checks: list[dict[str, Any]] = []

        def passed(name: str) -> None:
            checks.append({"name": name, "result": "PASS", "message": "ok"})

        report: dict[str, Any] = {"zip": str(zip_path)}
        try:
            with archive.open_zip(Path(zip_path), self.limits) as zf:
                package = self.read_package(zf, passed)
                report.update(name=package.manifest.name, version=package.manifest.version)
                plan = self.plan(zf, package)
                checks.append({"name": "python", "result": "PASS", "message": plan.interpreter.describe()})
                checks.append({"name": "wheels", "result": "PASS",
                               "message": ", ".join(plan.resolution.pins())})
                report.update(python=plan.interpreter.path, python_version=plan.interpreter.version_str)
        except RunnerError as exc:
            checks.append({"name": str(exc.details.get("check", "zip_safety")), "result": "FAIL",
                           "message": exc.message, "code": exc.code, "error_name": exc.name})
            report["error"] = exc.to_dict()
        failed = sum(1 for c in checks if c["result"] == "FAIL")
        report["summary"] = {"status": "FAIL" if failed else "PASS", "passed": len(checks) - failed,
                             "failed": failed}
        report["checks"] = checks
        return report


def _passed(callback: Progress | None, name: str) -> None:
    if callback is not None:
        callback(name)
