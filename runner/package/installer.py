"""The install pipeline: package zip -> checked -> offline venv -> smoke-tested -> published.

Nothing is written outside ``<root>/.staging/`` until every check and the smoke test passed.
Publishing is one ``rename`` of the staging folder to ``deployed/<name>/<version>/`` (same filesystem)
followed by the registry record; the staging folder carries a marker (``.procvision-install.json``, the
record itself) before the rename, so ``recover()`` can tell a published-but-unregistered version (kill -9
between rename and registry write: it is registered) from garbage (no marker: removed).

Checks 1-3 are in ``checks``, the record and the rename in ``publish``, crash repair in ``recovery``,
the venv tools in ``venvtools``. The venv is created (in ``.staging/<id>.venv``, outside the tree the
signature covers) while the package is extracted and its signature checked, then moved into place.

Concurrency: the per-version lock is held from the existence check to the registry write, so two
installs of one version, or an install racing an uninstall, are serialised; the registry takes the
root lock for each read-modify-write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk.manifest import Manifest

from ..config import Settings
from ..errors import PackageErrorCode, RunnerError
from ..store.locks import version_lock
from ..store.registry import INVALID, Registry
from ..store.space import DiskFullError, as_runner_error
from ..trust.gate import TrustGate
from . import archive, venv
from .bytecode import BytecodeCompiler, link_bytecode, site_packages
from .checks import CheckedPackage, InstallPlan, PackageChecks, Progress, sha256_file
from .publish import MARKER, discard, installed_record, invalid_record, publish, read_marker, remove_empty, remove_tree
from .recovery import recover
from .smoke import SmokeFailure, run_smoke_test
from .venvtools import PendingVenv, choose_tool, find_uv
from .warm_up import start_warm_up

__all__ = ["MARKER", "REQUIREMENTS_FILE", "STAGES", "CheckedPackage", "InstallPlan", "InstallResult", "Installer",
           "Progress", "sha256_file"]

log = logging.getLogger(__name__)

#: Deployed venvs a new install looks into for bytecode of the same files.
_BYTECODE_SOURCES = 3
STAGES = ("checking", "extracting", "creating venv", "installing", "smoke test", "publishing")
REQUIREMENTS_FILE = ".procvision-requirements.txt"


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


class Installer:
    """Installs, validates, removes and recovers package versions of one runtime root."""

    def __init__(self, settings: Settings, registry: Registry,
                 locate_uv: Callable[[], Path | None] = find_uv) -> None:
        self.settings = settings
        self._locate_uv = locate_uv  # a seam: tests install as a station without uv would
        self.registry = registry
        self.layout = settings.layout
        self.checks = PackageChecks(settings)
        self.limits = self.checks.limits
        self.finder = self.checks.finder
        self.trust = TrustGate(settings)
        self.bytecode = BytecodeCompiler(settings, venv.tool_environment(settings))
        # An install of the same version may wait for another one to finish completely.
        self._version_wait_s = settings.venv_timeout_s + settings.pip_timeout_s + settings.smoke_timeout_s + 60.0

    def warm_up(self) -> list[threading.Thread]:
        """Background threads that make the first install as fast as the next ones (``warm_up``) and
        import the signature verifier (``TrustGate.warm_up``). The daemon starts them as it starts and
        joins them at shutdown; no install waits for them."""
        threads: list[threading.Thread] = []
        trust = self.trust.warm_up()
        if trust is not None:
            threads.append(trust)
        threads.append(start_warm_up(self.settings, self.finder, self._locate_uv))
        return threads

    def validate(self, zip_path: Path) -> dict[str, Any]:
        """Checks 1-3 only (no venv, nothing written); the SDK's report shape (see ``checks``)."""
        return self.checks.validate(zip_path)

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
            package = self.checks.read_package(zf)
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
            marker = read_marker(version_dir)
            if marker is not None and marker.get("zip_sha256") == sha:
                # Published by an install that died before its registry write: finish it.
                return self._result(self.registry.put(marker), idempotent=True)
            raise RunnerError(PackageErrorCode.VERSION_CONFLICT,
                              f"{version_dir} already exists with other content; remove {name} {version} first",
                              name=name, version=version)
        return None

    def _install_locked(self, zf: zipfile.ZipFile, zip_path: Path, sha: str, package: CheckedPackage,
                        emit: Progress) -> InstallResult:
        manifest = package.manifest
        plan = self.checks.plan(zf, package)
        token = uuid.uuid4().hex
        staging = self.layout.staging / token
        venv_build = self.layout.staging / f"{token}.venv"
        shm_dir = self.layout.staging / f"{token}.shm"
        staging.mkdir(parents=True)
        env = venv.tool_environment(self.settings)
        pending: PendingVenv | None = None
        try:
            tool = choose_tool(self.settings, env, self._locate_uv)
            # Creating the venv runs nothing of the package: it overlaps extraction and the signature check.
            pending = tool.start_venv(plan.interpreter.path, venv_build)
            emit("extracting")
            archive.extract(zf, package.infos, staging, self.limits)
            # Signature check before anything of the package runs (wheel .pth files, smoke test).
            signature = self.trust.admit(staging, package.layout)
            emit("creating venv")
            building, pending = pending, None
            building.finish()
            os.rename(venv_build, staging / "venv")
            requirements = staging / REQUIREMENTS_FILE
            requirements.write_text("\n".join(plan.resolution.pins()) + "\n", encoding="utf-8")
            emit("installing")
            assert package.layout.wheels_dir is not None
            wheels_dir = staging / package.layout.wheels_dir
            chosen = [wheels_dir / w.filename for w in plan.resolution.chosen.values()]
            tool.install(staging / "venv", chosen, wheels_dir, requirements)
            compile_later = self.settings.compile_bytecode and not tool.compiles_bytecode
            if compile_later:
                self._link_bytecode(staging / "venv", manifest.name)
            package_rel = package.layout.package_dir or "."
            report = self._smoke_test(staging, package_rel, manifest, shm_dir, emit)
            emit("publishing")
            record = {**installed_record(self.layout, manifest, sha, zip_path.name, package_rel, plan, tool.name,
                                         report), "signature": signature}
            version_dir = publish(self.layout, staging, record, env)
            result = self._result(self.registry.put(record), idempotent=False)
            site = site_packages(version_dir / "venv")
            if compile_later and site is not None:
                self.bytecode.start(plan.interpreter.path, site)
            return result
        finally:
            if pending is not None:
                pending.cancel()
            remove_tree(staging)
            remove_tree(venv_build)
            remove_tree(shm_dir)

    def _link_bytecode(self, venv_dir: Path, name: str) -> None:
        """Link the bytecode deployed versions already have for the same files (same name first)."""
        site = site_packages(venv_dir)
        if site is None:
            return
        deployed = sorted(self.layout.deployed.glob("*/*/venv"),
                          key=lambda venv_dir: (venv_dir.parent.parent.name != name, -_mtime_ns(venv_dir)))
        sites = [s for s in (site_packages(d) for d in deployed[:_BYTECODE_SOURCES]) if s is not None]
        log.debug("linked %d .pyc files into %s", link_bytecode(site, sites), site)

    def _smoke_test(self, staging: Path, package_rel: str, manifest: Manifest, shm_dir: Path,
                    emit: Progress) -> dict[str, Any] | None:
        if not self.settings.smoke_test:
            return None
        emit("smoke test")
        try:
            return run_smoke_test(self.settings, venv.venv_python(staging / "venv"), staging / package_rel,
                                  manifest, shm_dir)
        except SmokeFailure as exc:
            raise RunnerError(PackageErrorCode.SMOKE_TEST_FAILED,
                              f"{manifest.name} {manifest.version} failed its smoke test: {exc.message}",
                              name=manifest.name, version=manifest.version, report=exc.report) from exc

    def _record_invalid(self, manifest: Manifest, sha: str, zip_name: str, error: RunnerError) -> None:
        """Make a failed install visible in the registry, unless a good record of that version exists."""
        existing = self.registry.get(manifest.name, manifest.version)
        if existing is not None and existing.get("state") != INVALID:
            return
        report = error.details.get("report") if isinstance(error.details.get("report"), dict) else None
        with contextlib.suppress(DiskFullError):  # the operation still reports the failure
            self.registry.put(invalid_record(manifest, sha, zip_name, error, report))

    def _result(self, record: Mapping[str, Any], idempotent: bool) -> InstallResult:
        version_dir = self.layout.version_dir(record["name"], record["version"])
        return InstallResult(name=record["name"], version=record["version"], state=str(record.get("state")),
                             version_dir=version_dir, package_dir=version_dir / str(record.get("package_dir") or "."),
                             zip_sha256=str(record.get("zip_sha256")), python=record.get("python"),
                             dialect=record.get("dialect"), idempotent=idempotent, report=record.get("smoke"),
                             signature=record.get("signature"))

    # --- removal and recovery ---------------------------------------------------------------------

    def remove(self, name: str, version: str) -> None:
        """Delete a version's files and record (callers make sure no worker runs it). 2009 if unknown."""
        with version_lock(self.layout, name, version, self._version_wait_s):
            version_dir = self.layout.version_dir(name, version)
            record = self.registry.get(name, version)
            if record is None and not version_dir.exists():
                raise RunnerError(PackageErrorCode.NOT_FOUND, f"{name} {version} is not installed",
                                  name=name, version=version)
            self.bytecode.stop(version_dir)
            if version_dir.exists():
                discard(self.layout, version_dir)
            self.registry.remove(name, version)
            remove_empty(version_dir.parent)

    def close(self) -> None:
        """End background work (bytecode compiles) at daemon shutdown; venvs work without it."""
        self.bytecode.stop(self.layout.root)

    def recover(self) -> None:
        """Repair the root after a crash (``recovery.recover``). Call once at start, before any install
        or worker runs."""
        recover(self.layout, self.registry)


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0  # removed meanwhile: looked at last (and skipped)
