"""Where everything lives under the runtime root (default ``./algorithms``).

    zips/                      drop folder; zips/rejected/ holds files that failed (not a zip, or the
                               install refused it), each with <file>.error.json; zips/processed/ holds
                               zips that were installed (or whose content already was)
    deployed/<name>/<version>/ published package files + venv/
    active/<pid>.json          {name, version, activated_at}
    registry.json              every known version and its state
    operations.json            the API's install operations (last 100), kept across restarts
    logs/<name>/<version>/     worker stderr, rotated
    .staging/                  installs in progress (removed at start if stale)
    .trash/                    versions being deleted (removed at start)
    .locks/                    per-version lock files
    .lock                      root lock (serialises state changes)
    .daemon.lock               held for the daemon's whole life: a second daemon refuses to start
    .token                     the API bearer token (mode 0600; refused if group/others can read it)
    .uv-cache/                 uv's wheel cache, shared by every version's install
    trust/                     trusted public keys and CA certificates (PEM) that packages must be signed with
    .signing/                  the root's own signing key (made by quickstart; mode 0600)
    .workers/                  one file per supervisor: its running worker process groups and cgroups
    .sandbox/                  the worker sandbox's compiled seccomp filter
    .uploads/                  zips being uploaded over the API (removed at start)
    .warm-up/                  the throwaway venv the daemon builds as it starts, to fill the venv tool's
                               caches before the first install (removed at start)
    runner_config.json         the settings file read when no other is named

The root and its folders are created 0750 (an existing looser root is tightened), state files 0640.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
#: Mode of the root and its folders: the daemon's user and its group, nobody else.
ROOT_MODE = 0o750
#: Mode of state files (registry, active bindings, operations journal); the token is 0600.
FILE_MODE = 0o640


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
    def processed(self) -> Path:
        """Drop-folder zips that were installed (or already were): out of the way of the next rescan."""
        return self.zips / "processed"

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
    def operations_file(self) -> Path:
        return self.root / "operations.json"

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
    def trust(self) -> Path:
        return self.root / "trust"

    @property
    def signing(self) -> Path:
        return self.root / ".signing"

    @property
    def worker_groups(self) -> Path:
        """Records of running worker process groups, read back after a daemon was killed."""
        return self.root / ".workers"

    @property
    def sandbox_dir(self) -> Path:
        return self.root / ".sandbox"

    @property
    def warm_up(self) -> Path:
        """Throwaway venvs of the start-up warm-up (package/warm_up.py)."""
        return self.root / ".warm-up"

    @property
    def wheelhouse(self) -> Path:
        """Content-addressed hard links of installed wheels (stable paths make uv's cache hit; see
        package/venv.py)."""
        return self.root / ".wheelhouse"

    @property
    def virtualenv_app_data(self) -> Path:
        """virtualenv's cache (embedded seed wheels), used when venvs are built without uv."""
        return self.root / ".virtualenv"

    @property
    def uploads(self) -> Path:
        """Zips being received over the API, one folder per upload."""
        return self.root / ".uploads"

    @property
    def config_file(self) -> Path:
        """The settings file a root carries (used when no config file is named)."""
        return self.root / "runner_config.json"

    @property
    def drop_state_file(self) -> Path:
        """What the drop-folder watcher has seen (so a restart does not install a zip twice)."""
        return self.root / ".drop-state.json"

    def version_dir(self, name: str, version: str) -> Path:
        return self.deployed / name / version

    def venv_dir(self, name: str, version: str) -> Path:
        return self.version_dir(name, version) / "venv"

    def venv_python(self, name: str, version: str) -> Path:
        """The interpreter of a version's venv (what its workers run)."""
        return self.venv_dir(name, version) / "bin" / "python"

    def version_lock(self, name: str, version: str) -> Path:
        return self.locks / f"{_SAFE.sub('_', name)}@{_SAFE.sub('_', version)}.lock"

    def active_file(self, pid: str) -> Path:
        return self.active / f"{_SAFE.sub('_', pid)}.json"

    def log_dir(self, name: str, version: str) -> Path:
        return self.logs / name / version

    def ensure(self) -> None:
        """Create the folders of the layout (idempotent), owner+group only (``ROOT_MODE``).

        An existing root that group members may write or others may enter is tightened to
        ``ROOT_MODE``: the registry, the logs and the token live there.
        """
        self.root.mkdir(mode=ROOT_MODE, parents=True, exist_ok=True)
        current = stat.S_IMODE(self.root.stat().st_mode)
        if current & ~ROOT_MODE:
            os.chmod(self.root, current & ROOT_MODE)
        for path in (self.zips, self.rejected, self.processed, self.deployed, self.active, self.logs, self.staging,
                     self.trash, self.locks):
            path.mkdir(mode=ROOT_MODE, parents=True, exist_ok=True)
