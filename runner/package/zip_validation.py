"""``validate ZIP`` on the runner: the SDK's ``validate --zip`` checks, by the same names and in the
SDK's report type, plus what only this station can tell (which interpreter would run the package,
and the install plan from its wheels), so ``procvision-cli validate --zip`` and
``procvision-runner validate`` agree on what a check is called and what it found.

The runner's own stages are named like the SDK checks they overlap with (``zip_safety`` is the
SDK's ``zip_layout``, ``layout`` is part of ``manifest``); a stage the SDK passed but the runner
fails (its limits come from the settings, the SDK's are the defaults) replaces the SDK's entry. A
failed check carries the error code the install would fail with, for the CLI's exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from procvision_algorithm_sdk.cli.report import FAIL, Report
from procvision_algorithm_sdk.cli.zipcheck import validate_zip as sdk_validate_zip

from ..errors import PackageErrorCode
from .installer import Installer

#: Runner install stages -> the SDK check they are (or a station-only name).
STAGE_NAMES = {"zip_safety": "zip_layout", "layout": "manifest", "manifest": "manifest",
               "python": "station_python", "wheels": "station_wheels"}
#: The code an install would fail with, per SDK check name (when the runner's own stage has none).
CHECK_CODES = {
    "zip_open": PackageErrorCode.INVALID_ZIP, "zip_layout": PackageErrorCode.INVALID_ZIP,
    "manifest": PackageErrorCode.MANIFEST_MISSING, "entry_point": PackageErrorCode.SMOKE_TEST_FAILED,
    "imports": PackageErrorCode.SMOKE_TEST_FAILED, "requirements": PackageErrorCode.WHEELS_MISSING,
    "target": PackageErrorCode.INCOMPATIBLE_PYTHON, "python_requires": PackageErrorCode.INCOMPATIBLE_PYTHON,
    "wheels": PackageErrorCode.WHEELS_MISSING, "dependencies": PackageErrorCode.WHEELS_MISSING,
}


def validate_package_zip(installer: Installer, zip_path: Path) -> dict[str, Any]:
    """The merged report: ``{summary, checks: [{name, result, message, code?}], name?, version?, ...}``."""
    station = installer.validate(zip_path)
    report: Report = sdk_validate_zip(zip_path)
    checks = report.to_dict()["checks"]
    by_name = {c["name"]: c for c in checks}
    for step in station.get("checks") or []:
        name = STAGE_NAMES.get(str(step["name"]), str(step["name"]))
        shown = {**step, "name": name}
        shown.pop("error_name", None)
        existing = by_name.get(name)
        if existing is None:
            checks.append(shown)
            by_name[name] = shown
        elif step["result"] == FAIL:
            if existing["result"] == FAIL:
                existing["code"] = step.get("code")
                existing["message"] = f"{existing['message']}\nrunner: {step['message']}"
            else:
                checks[checks.index(existing)] = shown
                by_name[name] = shown
    for check in checks:
        if check["result"] == FAIL and not check.get("code") and check["name"] in CHECK_CODES:
            check["code"] = CHECK_CODES[check["name"]].value
    failed = sum(1 for c in checks if c["result"] == FAIL)
    passed = sum(1 for c in checks if c["result"] == "PASS")
    merged = {key: value for key, value in station.items() if key not in ("checks", "summary")}
    merged["summary"] = {"status": FAIL if failed else "PASS", "passed": passed, "failed": failed}
    merged["checks"] = checks
    return merged
