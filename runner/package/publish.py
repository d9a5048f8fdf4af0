"""The end of an install: the registry record, the marker, the rename into ``deployed/``; and removing
folders the runner owns (one rename into ``.trash``, then delete).

Before the rename the staging folder receives ``.procvision-install.json`` (the record itself): the
"complete" marker ``recovery`` uses to tell a published-but-unregistered version from garbage.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk.manifest import Manifest

from ..errors import PackageErrorCode, RunnerError
from ..store.atomic import fsync_dir, read_json, write_json_atomic
from ..store.layout import RootLayout
from ..store.registry import INSTALLED, INVALID, utc_now
from . import venv, wheels
from .checks import InstallPlan

log = logging.getLogger(__name__)

MARKER = ".procvision-install.json"


def installed_record(layout: RootLayout, manifest: Manifest, sha: str, zip_name: str, package_rel: str,
                     plan: InstallPlan, tool: str, report: dict[str, Any] | None) -> dict[str, Any]:
    """The registry record of a version that passed every check and its smoke test."""
    sdk = plan.resolution.chosen.get(wheels.SDK_DISTRIBUTION)
    now = utc_now()
    return {
        "name": manifest.name, "version": manifest.version, "supported_pids": list(manifest.supported_pids),
        "state": INSTALLED, "created_at": now, "updated_at": now, "zip_sha256": sha, "zip_name": zip_name,
        "python": plan.interpreter.path, "python_version": plan.interpreter.version_str,
        "venv_python": str(layout.venv_python(manifest.name, manifest.version)),
        "dialect": (report or {}).get("dialect"),
        "sdk_version": (report or {}).get("sdk_version") or (str(sdk.version) if sdk else None),
        "entry_point": manifest.entry_point, "package_dir": package_rel, "last_error": None, "smoke": report,
        "installer": tool, "wheels": plan.resolution.pins(),
    }


def invalid_record(manifest: Manifest, sha: str, zip_name: str, error: RunnerError,
                   report: dict[str, Any] | None) -> dict[str, Any]:
    """The registry record of a version whose install failed (visible, never activated)."""
    return {
        "name": manifest.name, "version": manifest.version, "supported_pids": list(manifest.supported_pids),
        "state": INVALID, "zip_sha256": sha, "zip_name": zip_name, "entry_point": manifest.entry_point,
        "dialect": (report or {}).get("dialect"), "sdk_version": (report or {}).get("sdk_version"),
        "last_error": error.to_dict(), "smoke": report,
    }


def publish(layout: RootLayout, staging: Path, record: dict[str, Any], env: dict[str, str]) -> Path:
    """Marker, ``rename(staging, deployed/<name>/<version>)``, then prove the venv works there.
    Returns the version folder; 2008 if it appeared meanwhile, 2005 (folder discarded) if the venv fails."""
    name, version = record["name"], record["version"]
    write_json_atomic(staging / MARKER, record)
    version_dir = layout.version_dir(name, version)
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
        discard(layout, version_dir)
        raise
    return version_dir


def read_marker(version_dir: Path) -> dict[str, Any] | None:
    """The record a published folder carries, or None (no marker, unreadable, incomplete)."""
    try:
        marker = read_json(version_dir / MARKER)
    except (OSError, ValueError):
        return None
    if isinstance(marker, dict) and {"name", "version", "zip_sha256", "state"} <= marker.keys():
        return marker
    return None


def discard(layout: RootLayout, folder: Path) -> None:
    """Move a folder into .trash (one rename: it disappears at once), then delete it."""
    layout.trash.mkdir(parents=True, exist_ok=True)
    target = layout.trash / f"{folder.name}-{uuid.uuid4().hex}"
    os.rename(folder, target)
    fsync_dir(folder.parent)
    remove_tree(target)


def remove_tree(path: Path) -> None:
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


def remove_empty(folder: Path) -> None:
    """Remove ``folder`` if it is empty."""
    try:
        folder.rmdir()
    except OSError:
        return  # not empty (other versions) or already gone: both fine
