"""Which package version serves which product id (pid): ``active/<pid>.json`` plus a per-pid history.

    active/<pid>.json            {"name", "version", "activated_at"[, "memory_limit_mb"]}
    active/.history/<pid>.json   [{"name", "version", "activated_at"[, ...]}, ...]  oldest first, bounded

``memory_limit_mb`` is the version's own worker memory limit given at activation (absent: the
``worker_memory_limit_mb`` setting).

Every change happens under the root lock and every file is replaced atomically, so the daemon and a
CLI on the same root never see half a binding. The last history entry is the current (or last)
binding; ``rollback`` walks back from it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PackageErrorCode, RunnerError
from ..store.atomic import commit_staged, fsync_dir, json_bytes, read_json, stage_bytes, write_json_atomic
from ..store.layout import RootLayout
from ..store.locks import ROOT_LOCK_TIMEOUT_S, root_lock

#: How many bindings each pid's history keeps.
HISTORY_LIMIT = 20


def utc_now() -> str:
    """Timestamp format of activation files (ISO-8601 UTC, milliseconds), as in the registry."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Binding:
    """One pid bound to one package version (with the version's memory limit, if it has its own)."""

    pid: str
    name: str
    version: str
    activated_at: str
    memory_limit_mb: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.name, self.version

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, **self.file_body()}

    def file_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "version": self.version, "activated_at": self.activated_at}
        if self.memory_limit_mb is not None:
            body["memory_limit_mb"] = self.memory_limit_mb
        return body


def _binding(pid: str, body: Any) -> Binding | None:
    if not isinstance(body, dict):
        return None
    name, version = body.get("name"), body.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return None
    limit = body.get("memory_limit_mb")
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0 else None
    return Binding(pid, name, version, str(body.get("activated_at") or ""), limit)


def check_pid(pid: Any) -> str:
    """A pid must be a non-empty string without path separators or control characters."""
    if not isinstance(pid, str) or not pid.strip():
        raise RunnerError(PackageErrorCode.INVALID_REQUEST, f"pid must be a non-empty string, got {pid!r}")
    if any(ch in pid for ch in "/\\\0") or any(ord(ch) < 32 for ch in pid) or len(pid) > 200:
        raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                          f"pid {pid!r} is not usable: at most 200 characters, no slashes or control characters")
    return pid


class ActivationStore:
    """The active bindings and their history under one runtime root.

    Methods that change files take the root lock themselves; callers must not hold it.
    """

    def __init__(self, layout: RootLayout, lock_timeout_s: float = ROOT_LOCK_TIMEOUT_S,
                 history_limit: int = HISTORY_LIMIT) -> None:
        self.layout = layout
        self._lock_timeout_s = lock_timeout_s
        self._history_limit = max(2, history_limit)

    # --- paths ---------------------------------------------------------------------------------

    @property
    def history_dir(self) -> Path:
        return self.layout.active / ".history"

    def history_file(self, pid: str) -> Path:
        return self.history_dir / self.layout.active_file(pid).name

    # --- reading -------------------------------------------------------------------------------

    def get(self, pid: str) -> Binding | None:
        """The binding of ``pid`` or None."""
        return _binding(pid, self._read(self.layout.active_file(pid)))

    def all(self) -> dict[str, Binding]:
        """Every active binding, by pid.

        The pid is read from the history file of the same name when it exists (file names replace
        unsafe characters), else from the file name.
        """
        folder = self.layout.active
        if not folder.is_dir():
            return {}
        result: dict[str, Binding] = {}
        for path in sorted(folder.glob("*.json")):
            if path.name.startswith("."):
                continue
            pid = self._pid_of(path)
            binding = _binding(pid, self._read(path))
            if binding is not None:
                result[pid] = binding
        return result

    def history(self, pid: str) -> list[Binding]:
        """Past and current bindings of ``pid``, oldest first."""
        raw = self._read(self.history_file(pid))
        entries = raw.get("entries") if isinstance(raw, dict) else None
        if not isinstance(entries, list):
            return []
        return [b for b in (_binding(pid, e) for e in entries) if b is not None]

    def ever_bound(self) -> set[tuple[str, str]]:
        """Every (name, version) found in any pid's history."""
        seen: set[tuple[str, str]] = set()
        folder = self.history_dir
        if not folder.is_dir():
            return seen
        for path in folder.glob("*.json"):
            raw = self._read(path)
            entries = raw.get("entries") if isinstance(raw, dict) else None
            for entry in entries if isinstance(entries, list) else []:
                binding = _binding("", entry)
                if binding is not None:
                    seen.add(binding.key)
        return seen

    def last_used(self, name: str, version: str) -> str:
        """Latest ``activated_at`` of ``name``/``version`` in any history ("" if never)."""
        latest = ""
        folder = self.history_dir
        if not folder.is_dir():
            return latest
        for path in folder.glob("*.json"):
            raw = self._read(path)
            entries = raw.get("entries") if isinstance(raw, dict) else None
            for entry in entries if isinstance(entries, list) else []:
                binding = _binding("", entry)
                if binding is not None and binding.key == (name, version):
                    latest = max(latest, binding.activated_at)
        return latest

    # --- changing ------------------------------------------------------------------------------

    def bind(self, pids: Iterable[str], name: str, version: str, memory_limit_mb: int | None = None
             ) -> list[Binding]:
        """Bind every pid to ``name``/``version`` (with its own memory limit, if given) and append
        it to each pid's history.

        All files are written under one hold of the root lock; if a write fails, pids already
        rewritten are restored so the set of bindings changes completely or not at all.
        """
        now = utc_now()
        bindings = [Binding(check_pid(p), name, version, now, memory_limit_mb) for p in pids]
        with root_lock(self.layout, self._lock_timeout_s):
            self._apply(bindings)
        return bindings

    def unbind(self, pids: Iterable[str]) -> list[str]:
        """Remove the bindings of ``pids`` (history is kept); returns the pids that were bound."""
        removed: list[str] = []
        with root_lock(self.layout, self._lock_timeout_s):
            for pid in pids:
                path = self.layout.active_file(check_pid(pid))
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed.append(pid)
            if removed:
                fsync_dir(self.layout.active)
        return removed

    # --- internals -----------------------------------------------------------------------------

    def _apply(self, bindings: list[Binding]) -> None:
        """Write active + history files for ``bindings``; caller holds the root lock.

        Every new file is written in full (staged) before any is renamed into place, so a full disk
        fails in the staging step with every binding unchanged (2017). If a rename fails, the files
        already replaced are restored, so the set of bindings changes completely or not at all.
        """
        self.layout.active.mkdir(parents=True, exist_ok=True)
        self.history_dir.mkdir(parents=True, exist_ok=True)
        writes: list[tuple[Path, Any]] = []
        for binding in bindings:
            active_path = self.layout.active_file(binding.pid)
            history_path = self.history_file(binding.pid)
            owner = self._pid_of(active_path) if history_path.exists() else binding.pid
            if owner != binding.pid:
                raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                                  f"pid {binding.pid!r} maps to the same state file as pid {owner!r}; "
                                  "use pids that differ in letters, digits, '.', '_' or '-'",
                                  pid=binding.pid, other_pid=owner)
            history = self.history(binding.pid)
            if history and history[-1].key == binding.key:
                history.pop()  # re-activating the current version refreshes, not duplicates, it
            history.append(binding)
            history = history[-self._history_limit:]
            writes.append((history_path, {"pid": binding.pid, "entries": [b.file_body() for b in history]}))
            writes.append((active_path, binding.file_body()))
        staged: list[tuple[Path, Path]] = []
        try:
            for path, body in writes:
                staged.append((stage_bytes(path, json_bytes(body)), path))
        except BaseException:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise
        saved = [(path, self._read(path)) for _, path in staged]
        committed = 0
        try:
            for tmp, path in staged:
                commit_staged(tmp, path)
                committed += 1
        except BaseException:
            for tmp, _ in staged[committed:]:
                tmp.unlink(missing_ok=True)
            self._restore(saved[:committed])
            raise

    def _restore(self, saved: list[tuple[Path, Any]]) -> None:
        for path, body in reversed(saved):
            try:
                if body is None:
                    path.unlink(missing_ok=True)
                else:
                    write_json_atomic(path, body)
            except OSError as exc:
                # The original failure is what the caller must see; this one is only reported.
                raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                                  f"could not restore {path} after a failed activation: {exc}; "
                                  "check the active/ folder by hand", path=str(path)) from exc

    def _pid_of(self, active_path: Path) -> str:
        raw = self._read(self.history_dir / active_path.name)
        if isinstance(raw, dict) and isinstance(raw.get("pid"), str) and raw["pid"]:
            return str(raw["pid"])
        return active_path.stem

    @staticmethod
    def _read(path: Path) -> Any:
        try:
            return read_json(path, default=None)
        except (ValueError, OSError):
            # A damaged state file reads as absent: the pid shows as unbound and can be re-activated.
            return None
