"""Repairing a runtime root after a crash (``Installer.recover``, once at start, before any install or
worker runs)."""

from __future__ import annotations

import logging

from ..errors import PackageErrorCode, RunnerError
from ..store.layout import RootLayout
from ..store.registry import INVALID, Registry
from .publish import discard, read_marker, remove_empty, remove_tree

log = logging.getLogger(__name__)


def recover(layout: RootLayout, registry: Registry) -> None:
    """Remove stale staging folders, .trash and .warm-up; register published folders whose registry write was
    lost; delete deployed folders without a marker; mark records whose folder is gone invalid; drop
    wheelhouse links that no deployed version shares any more."""
    layout.ensure()
    for folder in (layout.staging, layout.trash):
        for entry in folder.iterdir():
            remove_tree(entry)
    remove_tree(layout.warm_up)
    records = {(r["name"], r["version"]): r for r in registry.list()}
    for name_dir in sorted(p for p in layout.deployed.iterdir() if p.is_dir()):
        for version_dir in sorted(p for p in name_dir.iterdir()):
            key = (name_dir.name, version_dir.name)
            if key in records and records[key].get("state") != INVALID:
                continue
            marker = read_marker(version_dir) if version_dir.is_dir() else None
            if marker is not None and (marker.get("name"), marker.get("version")) == key:
                log.warning("recover: registering %s %s (published, registry write was lost)", *key)
                registry.put(marker)
                continue
            log.warning("recover: removing %s (incomplete or unknown)", version_dir)
            discard(layout, version_dir)
        remove_empty(name_dir)
    prune_wheelhouse(layout)
    for record in registry.list():
        if record.get("state") == INVALID:
            continue
        version_dir = record.version_dir(layout)
        if not record.venv_python(layout).exists():
            error = RunnerError(PackageErrorCode.NOT_FOUND,
                                f"{version_dir} or its venv is missing; reinstall the package",
                                name=record["name"], version=record["version"])
            log.warning("recover: %s", error.message)
            registry.update_state(record["name"], record["version"], INVALID, error)


def prune_wheelhouse(layout: RootLayout) -> None:
    """Drop wheelhouse links no deployed version shares any more (link count 1)."""
    wheelhouse = layout.wheelhouse
    if not wheelhouse.is_dir():
        return
    for folder in wheelhouse.iterdir():
        for wheel in folder.iterdir() if folder.is_dir() else ():
            if wheel.is_file() and wheel.stat().st_nlink <= 1:
                wheel.unlink()
        remove_empty(folder)
