"""Smoke-test reports of installed versions, as ``RunnerService.validate_installed`` answers them:
the stored report in the SDK's validation shape, a fresh run, or why no run is possible."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk.cli.report import Report
from runner.config import Settings
from runner.errors import PackageErrorCode, RunnerError
from runner.jsonable import jsonable
from runner.store.layout import RootLayout
from runner.store.registry import VersionRecord


def smoke_to_report(name: str, version: str, smoke: dict[str, Any], rerun: bool) -> dict[str, Any]:
    """A smoke-test report as the SDK's validation ``Report`` (summary + checks), plus which version
    and the smoke report itself. The smoke test's own status wins (it fails before any step when the
    worker does not start)."""
    report = Report()
    for step in smoke.get("steps") or []:
        if isinstance(step, dict):
            report.add(str(step.get("name")), str(step.get("result")), str(step.get("message") or ""))
    body = report.to_dict()
    if smoke.get("status"):
        body["summary"]["status"] = str(smoke["status"])
    return {"name": name, "version": version, "rerun": rerun, **body, "smoke": smoke}


def is_deployed(layout: RootLayout, record: VersionRecord) -> bool:
    """Whether the version has a deployed package to run its smoke test on."""
    if record.invalid:
        return False
    return (record.package_folder(layout) / "manifest.json").is_file()


def not_deployed_report(record: VersionRecord) -> dict[str, Any]:
    """What ``--rerun`` answers for a version that has nothing deployed to test: the stored report."""
    name, version = record.key
    last_error = record.last_error if isinstance(record.last_error, dict) else {}
    why = (f"{name} {version} is recorded invalid and is not deployed, so its smoke test cannot run again"
           if record.invalid else
           f"{name} {version} is not deployed (its folder is missing), so its smoke test cannot run again")
    note = f"{why}; fix the package and install it again. Showing the stored report."
    smoke = record.smoke
    if isinstance(smoke, dict) and smoke.get("steps"):
        report = smoke_to_report(name, version, jsonable(smoke), rerun=False)
    else:
        failed = Report()
        failed.fail(str((last_error or {}).get("name") or "deployed"),
                    str((last_error or {}).get("message") or why))
        report = {"name": name, "version": version, "rerun": False, **failed.to_dict(), "smoke": smoke}
    report.update(state=record.state, note=note, last_error=last_error or None)
    if last_error and last_error.get("code"):
        report["error"] = last_error
    return report


def rerun_smoke(settings: Settings, layout: RootLayout, record: VersionRecord) -> dict[str, Any]:
    """Run the smoke test of a deployed version again, in a scratch folder under staging."""
    from procvision_algorithm_sdk.manifest import ManifestError, load_manifest
    from runner.package.smoke import SmokeFailure, run_smoke_test

    name, version = record.key
    package_dir = record.package_folder(layout)
    python = record.venv_python(layout)
    try:
        manifest = load_manifest(package_dir / "manifest.json", pids_required=False)
    except (OSError, ManifestError) as exc:
        raise RunnerError(PackageErrorCode.MANIFEST_MISSING,
                          f"{name} {version}: cannot read its deployed manifest: {exc}",
                          name=name, version=version) from exc
    with tempfile.TemporaryDirectory(prefix="smoke-", dir=layout.staging) as scratch:
        try:
            return run_smoke_test(settings, python, package_dir, manifest, Path(scratch) / "shm")
        except SmokeFailure as exc:
            return exc.report
