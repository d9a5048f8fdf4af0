"""Where everything lives under the runtime root (default ``./algorithms``).

    zips/                      drop folder; zips/rejected/ holds zips that failed, with <zip>.error.json
    deployed/<name>/<version>/ published package files + venv/
    active/<pid>.json          {name, version, activated_at}
    registry.json              every known version and its state
    logs/<name>/<version>/     worker stderr, rotated
    .staging/                  installs in progress (removed at start if stale)
    .trash/                    versions being deleted (removed at start)
    .locks/                    per-version lock files
    .lock                      root lock (serialises state changes)
    .daemon.lock               held for the daemon's whole life: a second daemon refuses to start
    .token                     the API bearer token (mode 0600)
    .uv-cache/                 uv's wheel cache, shared by every version's install
    .sandbox/                  the worker sandbox's compiled seccomp filter
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class RootLayout:
    """Paths of one runtime root. Pure: computing a path touches nothing on disk."""

    root: Path

    @property
    def zips(self) -> Path:
        return self.root / "zips"

    @property
    def rejected(self) -> Path:
        return self.zips / "rejected"

    @property
    def deployed(self) -> Path:
        return self.root / "deployed"

    @property
    def active(self) -> Path:
        return self.root / "active"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def staging(self) -> Path:
        return self.root / ".staging"

    @property
    def trash(self) -> Path:
        return self.root / ".trash"

    @property
    def locks(self) -> Path:
        return self.root / ".locks"

    @property
    def registry_file(self) -> Path:
        return self.root / "registry.json"

    @property
    def root_lock(self) -> Path:
        return self.root / ".lock"

    @property
    def daemon_lock(self) -> Path:
        return self.root / ".daemon.lock"

    @property
    def token_file(self) -> Path:
        return self.root / ".token"

    @property
    def uv_cache(self) -> Path:
        return self.root / ".uv-cache"

    @property
    def sandbox_dir(self) -> Path:
        return self.root / ".sandbox"

    def version_dir(self, name: str, version: str) -> Path:
        return self.deployed / name / version

    def venv_dir(self, name: str, version: str) -> Path:
        return self.version_dir(name, version) / "venv"

    def version_lock(self, name: str, version: str) -> Path:
        return self.locks / f"{_SAFE.sub('_', name)}@{_SAFE.sub('_', version)}.lock"

    def active_file(self, pid: str) -> Path:
        return self.active / f"{_SAFE.sub('_', pid)}.json"

    def log_dir(self, name: str, version: str) -> Path:
        return self.logs / name / version

    def ensure(self) -> None:
        """Create the folders of the layout (idempotent)."""
        for path in (self.zips, self.rejected, self.deployed, self.active, self.logs, self.staging,
                     self.trash, self.locks):
            path.mkdir(parents=True, exist_ok=True)
