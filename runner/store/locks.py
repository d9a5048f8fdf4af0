"""Inter-process locks of one runtime root (``filelock``; ``flock`` on Linux).

* the root lock (``<root>/.lock``) serialises every change of shared state (registry, active files);
  hold it briefly, never across a venv build;
* a per-version lock (``<root>/.locks/<name>@<version>.lock``) serialises operations on one version
  (install, uninstall) and is held for their whole duration;
* the daemon lock (``<root>/.daemon.lock``) is held for the daemon's life so a second daemon on the
  same root refuses to start.

Lock order, to stay deadlock-free: version lock first, then the root lock; never the other way round.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import PackageErrorCode, RunnerError
from .layout import RootLayout

#: How long a state change waits for the root lock before reporting BUSY.
ROOT_LOCK_TIMEOUT_S = 30.0


def _lock(path: Path) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    # thread_local=False: one lock object may be released by another thread than the acquirer
    # (the watcher's worker thread); separate FileLock objects still exclude each other.
    return FileLock(str(path), thread_local=False, preserve_lock_file=True)


@contextmanager
def hold(path: Path, timeout_s: float, what: str) -> Iterator[None]:
    """Hold the lock file ``path`` for the block; RunnerError BUSY if it is not free within ``timeout_s``."""
    lock = _lock(path)
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise RunnerError(PackageErrorCode.BUSY,
                          f"{what} is locked by another operation; try again when it has finished",
                          lock=str(path), waited_s=timeout_s) from None
    try:
        yield
    finally:
        lock.release()


def root_lock(layout: RootLayout, timeout_s: float = ROOT_LOCK_TIMEOUT_S) -> AbstractContextManager[None]:
    """Context manager holding the root lock (registry and other shared state)."""
    return hold(layout.root_lock, timeout_s, "the runtime root")


def version_lock(layout: RootLayout, name: str, version: str, timeout_s: float) -> AbstractContextManager[None]:
    """Context manager holding the lock of ``name``/``version`` (install, uninstall)."""
    return hold(layout.version_lock(name, version), timeout_s, f"{name} {version}")


class DaemonLock:
    """The single-instance lock of a root, held for the life of the daemon process.

    ``acquire`` never waits: if another process holds it, RunnerError ALREADY_RUNNING names the
    holder's pid (written into the lock file by the holder).
    """

    def __init__(self, layout: RootLayout) -> None:
        self._path = layout.daemon_lock
        self._lock = _lock(self._path)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> None:
        """Take the lock or raise ALREADY_RUNNING at once."""
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            holder = self._read_holder()
            raise RunnerError(PackageErrorCode.ALREADY_RUNNING,
                              f"another runner daemon (pid {holder or 'unknown'}) already serves "
                              f"{self._path.parent}; stop it or use another --root",
                              root=str(self._path.parent), pid=holder) from None
        # The pid goes into a sibling file: writing into the flock'd file itself would race the
        # lock library's own handling of it.
        self._pid_file().write_text(f"{os.getpid()}\n", encoding="utf-8")

    def release(self) -> None:
        """Give the lock up (normally only at daemon exit; process death releases it too)."""
        if self._lock.is_locked:
            self._pid_file().unlink(missing_ok=True)
            self._lock.release(force=True)

    def _pid_file(self) -> Path:
        return self._path.with_name(self._path.name + ".pid")

    def _read_holder(self) -> int | None:
        try:
            return int(self._pid_file().read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
