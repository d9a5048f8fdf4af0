"""The install pipeline: package zip -> checked -> offline venv -> smoke-tested -> published.

Nothing is written outside ``<root>/.staging/<id>/`` until every check and the smoke test passed.
Publishing is one ``rename`` of the staging folder to ``deployed/<name>/<version>/`` (same filesystem)
followed by the registry record; the staging folder carries a marker (``.procvision-install.json``, the
record itself) before the rename, so ``recover()`` can tell a published-but-unregistered version (kill -9
between rename and registry write: it is registered) from garbage (no marker: removed).

Concurrency: the per-version lock is held from the existence check to the registry write, so two
installs of one version, or an install racing an uninstall, are serialised; the registry takes the
root lock for each read-modify-write.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from procvision_algorithm_sdk.manifest import Manifest, ManifestError, parse_manifest_bytes

from ..config import Settings
from ..errors import PackageErrorCode, RunnerError
from ..store.atomic import fsync_dir, read_json, write_json_atomic
from ..store.locks import version_lock
from ..store.registry import INSTALLED, INVALID, Registry, utc_now
from ..store.space import DiskFullError, as_runner_error
from ..trust.gate import TrustGate
from . import archive, layout, venv, wheels
from .env_file import parse_env_file
from .interpreters import Interpreter, InterpreterFinder
from .smoke import SmokeFailure, run_smoke_test

log = logging.getLogger(__name__)

STAGES = ("checking", "extracting", "creating venv", "installing", "smoke test", "publishing")
MARKER = ".procvision-install.json"
REQUIREMENTS_FILE = ".procvision-requirements.txt"
MAX_SMALL_FILE = 1024 * 1024

Progress = Callable[[str], None]


@dataclass
class InstallResult:
    """What ``Installer.install`` did. ``python`` is the base interpreter the venv was built from;
    workers run ``<version_dir>/venv/bin/python``."""

    name: str
    version: str
    state: str
    version_dir: Path
    package_dir: Path
    zip_sha256: str
    python: str | None
    dialect: str | None
    idempotent: bool
    report: dict[str, Any] | None
    signature: dict[str, Any] | None = None  # runner/trust: {status, mode, signer, error}


@dataclass
class _Package:
    """What checks 1-2 learnt from the zip."""

    infos: list[zipfile.ZipInfo]
    layout: layout.PackageLayout
    manifest: Manifest
    env_config: dict[str, Any]


@dataclass
class _Plan:
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


def _remove_tree(path: Path) -> None:
    """Delete a folder we own; a failure is logged (recover() retries at the next start), not hidden."""
    if not path.exists() and not path.is_symlink():
        return
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as exc:
        log.warning("could not remove %s: %s (it is retried at the next start)", path, exc)


class Installer:
    """Installs, validates, removes and recovers package versions of one runtime root."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.layout = settings.layout
        self.limits = archive.ArchiveLimits.from_settings(settings)
        self.finder = InterpreterFinder(settings.python)
        self.trust = TrustGate(settings)
        # An install of the same version may wait for another one to finish completely.
        self._version_wait_s = settings.venv_timeout_s + settings.pip_timeout_s + settings.smoke_timeout_s + 60.0

    # --- checks 1-3 -----------------------------------------------------------------------------

    def _read_package(self, zf: zipfile.ZipFile, on_pass: Progress | None = None) -> _Package:
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
        return _Package(infos, found, manifest, env_config)

    def _plan(self, zf: zipfile.ZipFile, package: _Package) -> _Plan:
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
        return _Plan(interpreter, resolution)

    def _requirements(self, zf: zipfile.ZipFile, package: _Package,
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
                package = self._read_package(zf, passed)
                report.update(name=package.manifest.name, version=package.manifest.version)
                plan = self._plan(zf, package)
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

    # --- install --------------------------------------------------------------------------------

    def install(self, zip_path: Path, progress: Progress | None = None) -> InstallResult:
        """Install a package zip (see the module docstring). Progress stages, in order: checking,
        extracting, creating venv, installing, smoke test, publishing. Raises RunnerError 2001-2005,
        2008 (same version, other content), 2010 (smoke test failed), 2011 (busy)."""
        emit: Progress = progress or (lambda _stage: None)
        zip_path = Path(zip_path)
        self.layout.ensure()
        emit("checking")
        with archive.open_zip(zip_path, self.limits) as zf:
            package = self._read_package(zf)
            # Hashed after the archive checks: a hostile zip is refused without reading all of it.
            sha = sha256_file(zip_path)
            manifest = package.manifest
            with version_lock(self.layout, manifest.name, manifest.version, self._version_wait_s):
                done = self._already_installed(manifest, sha)
                if done is not None:
                    return done
                try:
                    return self._install_locked(zf, zip_path, sha, package, emit)
                except (RunnerError, OSError) as exc:
                    # Out of space anywhere in the pipeline is 2017, whatever step noticed it.
                    error = as_runner_error(exc, self.layout.root, f"installing {manifest.name} {manifest.version}")
                    if error.code != PackageErrorCode.VERSION_CONFLICT.value:
                        self._record_invalid(manifest, sha, zip_path.name, error)
                    if error is exc:
                        raise
                    raise error from exc

    def _already_installed(self, manifest: Manifest, sha: str) -> InstallResult | None:
        name, version = manifest.name, manifest.version
        record = self.registry.get(name, version)
        if record is not None and record.get("state") != INVALID:
            if record.get("zip_sha256") == sha:
                return self._result(record, idempotent=True)
            raise RunnerError(PackageErrorCode.VERSION_CONFLICT,
                              f"{name} {version} is already installed from different content; give the new "
                              "package a new version (installed versions are never overwritten)",
                              name=name, version=version, installed_sha256=record.get("zip_sha256"), zip_sha256=sha)
        version_dir = self.layout.version_dir(name, version)
        if version_dir.exists():
            marker = _read_marker(version_dir)
            if marker is not None and marker.get("zip_sha256") == sha:
                # Published by an install that died before its registry write: finish it.
                return self._result(self.registry.put(marker), idempotent=True)
            raise RunnerError(PackageErrorCode.VERSION_CONFLICT,
                              f"{version_dir} already exists with other content; remove {name} {version} first",
                              name=name, version=version)
        return None

    def _install_locked(self, zf: zipfile.ZipFile, zip_path: Path, sha: str, package: _Package,
                        emit: Progress) -> InstallResult:
        manifest = package.manifest
        plan = self._plan(zf, package)
        token = uuid.uuid4().hex
        staging = self.layout.staging / token
        shm_dir = self.layout.staging / f"{token}.shm"
        staging.mkdir(parents=True)
        try:
            emit("extracting")
            archive.extract(zf, package.infos, staging, self.limits)
            # Signature check before anything of the package runs (venv, wheel .pth files, smoke test).
            signature = self.trust.admit(staging, package.layout)
            tool = venv.choose_tool(self.settings)
            env = venv.tool_environment(self.settings, os.environ)
            emit("creating venv")
            venv.create_venv(self.settings, tool, plan.interpreter.path, staging / "venv", env)
            requirements = staging / REQUIREMENTS_FILE
            requirements.write_text("\n".join(plan.resolution.pins()) + "\n", encoding="utf-8")
            emit("installing")
            assert package.layout.wheels_dir is not None
            wheels_dir = staging / package.layout.wheels_dir
            if tool == "uv":
                chosen = [wheels_dir / w.filename for w in plan.resolution.chosen.values()]
                find_links = venv.wheelhouse_links(self.layout.wheelhouse, chosen)
            else:
                find_links = [wheels_dir]
            venv.install_requirements(self.settings, tool, staging / "venv", find_links, requirements, env)
            package_rel = package.layout.package_dir or "."
            report: dict[str, Any] | None = None
            if self.settings.smoke_test:
                emit("smoke test")
                try:
                    report = run_smoke_test(self.settings, venv.venv_python(staging / "venv"),
                                            staging / package_rel, manifest, shm_dir)
                except SmokeFailure as exc:
                    raise RunnerError(PackageErrorCode.SMOKE_TEST_FAILED,
                                      f"{manifest.name} {manifest.version} failed its smoke test: {exc.message}",
                                      name=manifest.name, version=manifest.version, report=exc.report) from exc
            emit("publishing")
            record = {**self._record(manifest, sha, zip_path.name, package_rel, plan, tool, report),
                      "signature": signature}
            return self._publish(staging, record, env)
        finally:
            _remove_tree(staging)
            _remove_tree(shm_dir)

    def _record(self, manifest: Manifest, sha: str, zip_name: str, package_rel: str, plan: _Plan, tool: str,
                report: dict[str, Any] | None) -> dict[str, Any]:
        sdk = plan.resolution.chosen.get(wheels.SDK_DISTRIBUTION)
        now = utc_now()
        return {
            "name": manifest.name, "version": manifest.version, "supported_pids": list(manifest.supported_pids),
            "state": INSTALLED, "created_at": now, "updated_at": now, "zip_sha256": sha, "zip_name": zip_name,
            "python": plan.interpreter.path, "python_version": plan.interpreter.version_str,
            "venv_python": str(self.layout.venv_python(manifest.name, manifest.version)),
            "dialect": (report or {}).get("dialect"),
            "sdk_version": (report or {}).get("sdk_version") or (str(sdk.version) if sdk else None),
            "entry_point": manifest.entry_point, "package_dir": package_rel, "last_error": None, "smoke": report,
            "installer": tool, "wheels": plan.resolution.pins(),
        }

    def _publish(self, staging: Path, record: dict[str, Any], env: dict[str, str]) -> InstallResult:
        name, version = record["name"], record["version"]
        write_json_atomic(staging / MARKER, record)
        version_dir = self.layout.version_dir(name, version)
        version_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, version_dir)
        except OSError as exc:
            raise RunnerError(PackageErrorCode.VERSION_CONFLICT,
                              f"cannot publish {name} {version}: {version_dir} appeared meanwhile ({exc})",
                              name=name, version=version) from exc
        fsync_dir(version_dir.parent)
        try:
            venv.check_relocated(version_dir / "venv", env)
        except RunnerError:
            self._discard(version_dir)
            raise
        return self._result(self.registry.put(record), idempotent=False)

    def _record_invalid(self, manifest: Manifest, sha: str, zip_name: str, error: RunnerError) -> None:
        """Make a failed install visible in the registry, unless a good record of that version exists."""
        existing = self.registry.get(manifest.name, manifest.version)
        if existing is not None and existing.get("state") != INVALID:
            return
        report = error.details.get("report") if isinstance(error.details.get("report"), dict) else None
        with contextlib.suppress(DiskFullError):  # the operation still reports the failure
            self._put_invalid(manifest, sha, zip_name, error, report)

    def _put_invalid(self, manifest: Manifest, sha: str, zip_name: str, error: RunnerError,
                     report: dict[str, Any] | None) -> None:
        self.registry.put({
            "name": manifest.name, "version": manifest.version, "supported_pids": list(manifest.supported_pids),
            "state": INVALID, "zip_sha256": sha, "zip_name": zip_name, "entry_point": manifest.entry_point,
            "dialect": (report or {}).get("dialect"), "sdk_version": (report or {}).get("sdk_version"),
            "last_error": error.to_dict(), "smoke": report,
        })

    def _result(self, record: Mapping[str, Any], idempotent: bool) -> InstallResult:
        version_dir = self.layout.version_dir(record["name"], record["version"])
        return InstallResult(name=record["name"], version=record["version"], state=str(record.get("state")),
                             version_dir=version_dir, package_dir=version_dir / str(record.get("package_dir") or "."),
                             zip_sha256=str(record.get("zip_sha256")), python=record.get("python"),
                             dialect=record.get("dialect"), idempotent=idempotent, report=record.get("smoke"),
                             signature=record.get("signature"))

    # --- removal and recovery ---------------------------------------------------------------------

    def _discard(self, folder: Path) -> None:
        """Move a folder into .trash (one rename: it disappears at once), then delete it."""
        self.layout.trash.mkdir(parents=True, exist_ok=True)
        target = self.layout.trash / f"{folder.name}-{uuid.uuid4().hex}"
        os.rename(folder, target)
        fsync_dir(folder.parent)
        _remove_tree(target)

    def remove(self, name: str, version: str) -> None:
        """Delete a version's files and record (callers make sure no worker runs it). 2009 if unknown."""
        with version_lock(self.layout, name, version, self._version_wait_s):
            version_dir = self.layout.version_dir(name, version)
            record = self.registry.get(name, version)
            if record is None and not version_dir.exists():
                raise RunnerError(PackageErrorCode.NOT_FOUND, f"{name} {version} is not installed",
                                  name=name, version=version)
            if version_dir.exists():
                self._discard(version_dir)
            self.registry.remove(name, version)
            _remove_empty(version_dir.parent)

    def recover(self) -> None:
        """Repair the root after a crash. Call once at start, before any install or worker runs.

        Removes stale staging folders and .trash; registers published folders whose registry write was
        lost; deletes deployed folders without a marker; marks records whose folder is gone invalid;
        drops wheelhouse links that no deployed version shares any more.
        """
        self.layout.ensure()
        for folder in (self.layout.staging, self.layout.trash):
            for entry in folder.iterdir():
                _remove_tree(entry)
        records = {(r["name"], r["version"]): r for r in self.registry.list()}
        for name_dir in sorted(p for p in self.layout.deployed.iterdir() if p.is_dir()):
            for version_dir in sorted(p for p in name_dir.iterdir()):
                key = (name_dir.name, version_dir.name)
                if key in records and records[key].get("state") != INVALID:
                    continue
                marker = _read_marker(version_dir) if version_dir.is_dir() else None
                if marker is not None and (marker.get("name"), marker.get("version")) == key:
                    log.warning("recover: registering %s %s (published, registry write was lost)", *key)
                    self.registry.put(marker)
                    continue
                log.warning("recover: removing %s (incomplete or unknown)", version_dir)
                self._discard(version_dir)
            _remove_empty(name_dir)
        self._prune_wheelhouse()
        for record in self.registry.list():
            if record.get("state") == INVALID:
                continue
            version_dir = record.version_dir(self.layout)
            if not record.venv_python(self.layout).exists():
                error = RunnerError(PackageErrorCode.NOT_FOUND,
                                    f"{version_dir} or its venv is missing; reinstall the package",
                                    name=record["name"], version=record["version"])
                log.warning("recover: %s", error.message)
                self.registry.update_state(record["name"], record["version"], INVALID, error)

    def _prune_wheelhouse(self) -> None:
        """Drop wheelhouse links no deployed version shares any more (link count 1)."""
        wheelhouse = self.layout.wheelhouse
        if not wheelhouse.is_dir():
            return
        for folder in wheelhouse.iterdir():
            for wheel in folder.iterdir() if folder.is_dir() else ():
                if wheel.is_file() and wheel.stat().st_nlink <= 1:
                    wheel.unlink()
            _remove_empty(folder)


def _read_marker(version_dir: Path) -> dict[str, Any] | None:
    try:
        marker = read_json(version_dir / MARKER)
    except (OSError, ValueError):
        return None
    if isinstance(marker, dict) and {"name", "version", "zip_sha256", "state"} <= marker.keys():
        return marker
    return None


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        return  # not empty (other versions) or already gone: both fine


def _passed(callback: Progress | None, name: str) -> None:
    if callback is not None:
        callback(name)
