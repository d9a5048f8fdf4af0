"""The drop folder (``<root>/zips/``): zips put there are installed, one at a time, in the background.

A zip is picked up only when it is complete:

* renamed into the folder (a ``moved`` event: the rename is atomic), or
* closed after writing (Linux ``closed`` event), or found by a rescan, AND its size and mtime stayed the
  same for ``settings.drop_stable_s``, AND its central directory is readable;
* seen only as ``created``/``modified`` (e.g. moved in from an unwatched folder, which inotify reports
  as a creation) and then quiet for ``QUIET_FACTOR`` stable periods, AND its central directory is
  readable (a zip being copied has no end-of-central-directory record until its last bytes land).

Nothing is opened while ``created``/``modified`` events say it is being written. Names ending in
``.part``/``.tmp``/``.partial``/``.crdownload``, dotfiles and non-``.zip`` files are ignored. The folder
is rescanned at start, when the observer thread dies, and every ``RESCAN_INTERVAL_S`` (inotify queue
overflows lose events silently).

Only regular files count. Every entry is looked at with ``lstat`` and files are opened with
``O_NOFOLLOW | O_NONBLOCK``: a symlink is never followed and a FIFO, socket or device is never opened (a
FIFO would block the install thread forever). Such an entry is rejected visibly: moved (renamed, never
copied) to ``zips/rejected/`` with an ``.error.json`` (2001, saying what it is). Directories are ignored.

Each zip is processed once per content hash: outcomes are remembered in ``<root>/.drop-state.json``.
A file already processed by this watcher is not hashed again while its (inode, size, mtime) stay the
same, so the periodic rescan costs one ``lstat`` per archived zip.
Installed zips stay in ``zips/`` (the archive); rejected ones move to ``zips/rejected/`` with
``<zip>.error.json`` (code, name, message, details) beside them; the installer records a failed version
in the registry when the manifest named it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from procvision_algorithm_sdk.zipsafety import ZipProblem, read_end_record

from ..config import Settings
from ..errors import PackageErrorCode, RunnerError
from ..jsonable import jsonable
from ..store.atomic import read_json, write_json_atomic
from ..store.registry import utc_now
from .archive import CHUNK
from .installer import Installer, InstallResult

log = logging.getLogger(__name__)

RESCAN_INTERVAL_S = 30.0
POLL_INTERVAL_S = 0.1
#: A zip that is stable but still has no readable central directory is handed to the installer
#: (which rejects it) after this many stable periods: it is broken, not being written.
UNREADABLE_GRACE_PERIODS = 5
MAX_REMEMBERED = 2000
#: A file seen being created or modified but never closed is taken after QUIET_FACTOR stable periods
#: (at least QUIET_MIN_S) without writes, and only if its central directory is readable.
QUIET_FACTOR = 4
QUIET_MIN_S = 2.0
IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".download")

OnResult = Callable[[Path, "InstallResult | RunnerError"], None]
#: What identifies "the same file, unchanged" between rescans without reading it.
_Signature = tuple[int, int, int]
#: Flags for every open of a drop file: never follow a symlink, never block on a FIFO.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class NotRegularFile(Exception):
    """A drop-folder entry that is not a regular file (``what`` says what it is)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def describe_entry(path: Path, st: os.stat_result) -> str | None:
    """None for a regular file, else what the entry is (from ``lstat``), for messages."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        try:
            return f"a symbolic link (to {os.readlink(path)})"
        except OSError:
            return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def open_regular(path: Path) -> int:
    """A read-only descriptor of ``path`` if it is a regular file; never follows a symlink and never
    blocks on a FIFO. Raises NotRegularFile (or OSError if it cannot be opened)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW on a symlink
            raise NotRegularFile("a symbolic link") from None
        raise
    try:
        what = describe_entry(path, os.fstat(fd))
        if what is not None:
            raise NotRegularFile(what)
        # O_NONBLOCK means nothing for regular files; clear it so reads behave normally anyway.
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def hash_regular(path: Path) -> tuple[str, _Signature]:
    """SHA-256 of a regular file opened without following links, and its (inode, size, mtime_ns)."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as handle:
        st = os.fstat(handle.fileno())
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest(), (st.st_ino, st.st_size, st.st_mtime_ns)


def is_candidate_name(name: str) -> bool:
    """Whether a file name in the drop folder may be a finished package zip."""
    lower = name.lower()
    return not name.startswith(".") and lower.endswith(".zip") and not lower.endswith(IGNORED_SUFFIXES)


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    stable_since: float
    done_writing: bool  # a close, a rename or a rescan says no writer is active
    unreadable_since: float | None = None


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: DropFolderWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        src = Path(os.fsdecode(event.src_path) or "/")
        kind = event.event_type
        if kind == "moved":
            dest = os.fsdecode(event.dest_path)
            self._watcher._moved(src, Path(dest) if dest else None)
        elif kind in ("created", "modified"):
            self._watcher._activity(src)
        elif kind == "closed":
            self._watcher._offer(src, done_writing=True)
        elif kind == "deleted":
            self._watcher._forget(src)
        # opened / closed_no_write / attrib: readers (including us) do not change readiness.


class DropFolderWatcher:
    """Watches ``<root>/zips`` and installs complete zips on one background thread."""

    def __init__(self, settings: Settings, installer: Installer, on_result: OnResult | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        # Every stable/quiet period and the rescan interval are measured on this clock (seconds,
        # monotonic): tests pass a fake one so they need not sleep through the waiting periods.
        self._clock = clock
        self.installer = installer
        self.on_result = on_result
        self.layout = settings.layout
        self.folder = self.layout.zips
        self.state_file = self.layout.drop_state_file
        self._cond = threading.Condition()
        self._pending: dict[Path, _Pending] = {}
        self._writing: set[Path] = set()
        self._stop = threading.Event()
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._last_scan = 0.0
        self._busy = False
        self._passes = 0
        # Entries that are not regular files, waiting to be moved aside (path -> what it is).
        self._special: dict[Path, str] = {}
        # Files processed and still here, by (inode, size, mtime_ns): a rescan does not hash them again.
        self._processed: dict[Path, _Signature] = {}
        # Entries already reported as impossible to move aside (logged once, then skipped).
        self._stuck: dict[Path, _Signature] = {}

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching: observer, the install thread, and a full scan of what is already there."""
        if self._thread is not None:
            raise RuntimeError("DropFolderWatcher.start() called twice")
        self.layout.ensure()
        self._start_observer()
        self._thread = threading.Thread(target=self._run, name="drop-folder-installer", daemon=True)
        self._thread.start()
        self.scan()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop watching. An install in progress finishes first (bounded by its own deadlines)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=timeout_s)
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def scan(self) -> None:
        """Offer every zip in the folder (files with a writer we know of are left to their events)."""
        self._last_scan = self._clock()
        try:
            names = sorted(os.listdir(self.folder))
        except OSError as exc:
            log.error("cannot list the drop folder %s: %s", self.folder, exc)
            return
        present = {self.folder / name for name in names}
        with self._cond:
            for gone in [p for p in self._processed if p not in present]:
                del self._processed[gone]
            for gone in [p for p in self._stuck if p not in present]:
                del self._stuck[gone]
        for name in names:
            path = self.folder / name
            if not is_candidate_name(name):
                continue
            with self._cond:
                if path in self._writing:
                    continue
            self._offer(path, done_writing=True)

    @property
    def passes(self) -> int:
        """How many times the install thread has looked at the pending zips (each pass reads the
        clock afresh): a test that moved a fake clock waits for two more passes to see the effect."""
        with self._cond:
            return self._passes

    def idle(self) -> bool:
        """True when nothing is pending and no install runs (zips being written count as pending)."""
        with self._cond:
            return not self._busy and not self._pending and not self._special

    def _start_observer(self) -> None:
        observer: BaseObserver
        if sys.platform.startswith("linux"):
            from watchdog.observers.inotify import InotifyObserver

            # Full events: a zip moved in from an unwatched folder is a "moved" event (src ""), not a
            # "created" one that would look like a writer starting.
            observer = InotifyObserver(generate_full_events=True)
        else:
            observer = Observer()
        observer.schedule(_Handler(self), str(self.folder), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    # --- events (observer thread) ---------------------------------------------------------------

    def _in_folder(self, path: Path) -> bool:
        return path.parent == self.folder and is_candidate_name(path.name)

    def _lstat_regular(self, path: Path) -> os.stat_result | None:
        """``lstat`` of a drop entry if it is a regular file; anything else except a directory is queued
        to be moved aside, and None is returned."""
        try:
            st = os.lstat(path)
        except OSError:
            return None
        what = describe_entry(path, st)
        if what is None:
            return st
        if not stat.S_ISDIR(st.st_mode):
            with self._cond:
                self._pending.pop(path, None)
                self._writing.discard(path)
                if self._stuck.get(path) != _signature(st):
                    self._special[path] = what
                    self._cond.notify_all()
        return None

    def _regular_drop_file(self, path: Path) -> os.stat_result | None:
        """The lstat of ``path`` if it is a regular file directly in the drop folder, else None."""
        return self._lstat_regular(path) if self._in_folder(path) else None

    def _activity(self, path: Path) -> None:
        st = self._regular_drop_file(path)
        if st is None:
            return
        now = self._clock()
        with self._cond:
            self._processed.pop(path, None)
            self._writing.add(path)
            entry = self._pending.get(path)
            if entry is None:
                self._pending[path] = _Pending(st.st_size, st.st_mtime_ns, now, done_writing=False)
            else:
                entry.done_writing = False
                entry.stable_since = now
                entry.unreadable_since = None
            self._cond.notify_all()

    def _offer(self, path: Path, done_writing: bool, already_stable: bool = False) -> None:
        st = self._regular_drop_file(path)
        if st is None:
            return
        now = self._clock()
        with self._cond:
            if self._processed.get(path) == _signature(st):
                # Processed already and unchanged (a rescan, or a reader closing it): nothing to do.
                log.debug("drop folder: %s is unchanged since it was processed", path.name)
                self._writing.discard(path)
                return
            if done_writing:
                self._writing.discard(path)
            entry = self._pending.get(path)
            if entry is None:
                since = now - self.settings.drop_stable_s if already_stable else now
                self._pending[path] = _Pending(st.st_size, st.st_mtime_ns, since, done_writing)
            else:
                entry.done_writing = entry.done_writing or done_writing
            self._cond.notify_all()

    def _moved(self, src: Path, dest: Path | None) -> None:
        self._forget(src)
        # A rename is atomic: the file is complete the moment it appears under its final name.
        if dest is not None:
            self._offer(dest, done_writing=True, already_stable=True)

    def _forget(self, path: Path) -> None:
        with self._cond:
            self._pending.pop(path, None)
            self._writing.discard(path)
            self._special.pop(path, None)
            self._processed.pop(path, None)
            self._stuck.pop(path, None)

    # --- the install thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            observer = self._observer
            if observer is not None and not observer.is_alive() and not self._stop.is_set():
                log.warning("drop-folder observer stopped; restarting it and rescanning")
                with self._cond:
                    self._writing.clear()
                self._start_observer()
                self.scan()
            elif self._clock() - self._last_scan > RESCAN_INTERVAL_S:
                self.scan()
            path: Path | None = None
            with self._cond:
                self._busy = True
            try:
                if self._move_special():
                    continue
                path = self._next_ready()
                if path is not None:
                    self._process(path)
            finally:
                with self._cond:
                    self._busy = False
                    self._passes += 1
            if path is None:
                with self._cond:
                    self._cond.wait(timeout=POLL_INTERVAL_S)

    def _next_ready(self) -> Path | None:
        now = self._clock()
        stable_s = self.settings.drop_stable_s
        with self._cond:
            items = list(self._pending.items())
        for path, entry in items:
            st = self._lstat_regular(path)
            if st is None:
                with self._cond:
                    if self._pending.get(path) is entry:
                        del self._pending[path]
                        self._writing.discard(path)
                continue
            with self._cond:
                if (st.st_size, st.st_mtime_ns) != (entry.size, entry.mtime_ns):
                    entry.size, entry.mtime_ns, entry.stable_since = st.st_size, st.st_mtime_ns, now
                    entry.unreadable_since = None  # it is growing: not a broken file (yet)
                    continue
                # Without a close or rename (a zip moved in from an unwatched folder shows up as
                # "created" only), a much longer quiet period stands in for the close.
                needed = stable_s if entry.done_writing else max(stable_s * QUIET_FACTOR, QUIET_MIN_S)
                if now - entry.stable_since < needed:
                    continue
            if not _central_directory_readable(path):
                if not entry.done_writing:
                    continue  # never closed: still being written (or abandoned); never judged broken
                if entry.unreadable_since is None:
                    entry.unreadable_since = now
                if now - entry.unreadable_since < max(stable_s, 0.5) * UNREADABLE_GRACE_PERIODS:
                    continue
            with self._cond:
                if self._pending.get(path) is entry:
                    del self._pending[path]
                    self._writing.discard(path)
                    return path
        return None

    def _move_special(self) -> bool:
        """Move one non-regular entry aside (renamed, never opened); True if there was one."""
        with self._cond:
            if not self._special:
                return False
            path, what = next(iter(self._special.items()))
            del self._special[path]
        try:
            st = os.lstat(path)
        except OSError:
            return True  # gone already
        if describe_entry(path, st) is None:
            self._offer(path, done_writing=True)  # replaced by a regular file meanwhile
            return True
        error = RunnerError(PackageErrorCode.INVALID_ZIP,
                            f"zips/{path.name} is {what}, not a regular file; the drop folder never follows "
                            "links nor opens special files: copy or move the zip file itself into zips/",
                            entry=path.name, file_type=what)
        log.warning("drop folder: rejected %s: %s", path.name, error)
        if not self._reject(path, error, rename_only=True):
            with self._cond:
                self._stuck[path] = _signature(st)
        if self.on_result is not None:
            self.on_result(path, error)
        return True

    def _process(self, path: Path) -> None:
        try:
            sha, signature = hash_regular(path)
        except NotRegularFile as exc:
            with self._cond:
                self._special[path] = exc.what
            return
        except OSError as exc:
            log.warning("drop folder: %s vanished before it could be read: %s", path.name, exc.strerror or exc)
            return
        seen = self._remembered(sha)
        if seen is not None:
            if seen.get("outcome") == "rejected" and path.exists():
                error = RunnerError(str(seen.get("code") or PackageErrorCode.INVALID_ZIP.value),
                                    str(seen.get("message") or "rejected before"), **dict(seen.get("details") or {}))
                self._reject(path, error)
            else:
                self._mark_processed(path, signature)
            # The same name again is the archive being rescanned after a restart; another name is news.
            level = logging.DEBUG if seen.get("zip") == path.name else logging.INFO
            log.log(level, "drop folder: %s was already processed (%s)", path.name, seen.get("outcome"))
            return
        outcome: InstallResult | RunnerError
        try:
            outcome = self.installer.install(path)
        except RunnerError as exc:
            outcome = exc
        except Exception as exc:  # noqa: BLE001 - a bug or a disk problem: reject visibly, keep serving
            log.exception("drop folder: installing %s failed unexpectedly", path.name)
            outcome = RunnerError(PackageErrorCode.INSTALL_FAILED, f"unexpected error while installing: {exc}")
        if isinstance(outcome, RunnerError) and outcome.code == PackageErrorCode.BUSY.value:
            log.info("drop folder: %s waits: %s", path.name, outcome.message)
            self._offer(path, done_writing=True)
            return
        if isinstance(outcome, RunnerError):
            log.warning("drop folder: rejected %s: %s", path.name, outcome)
            self._reject(path, outcome)
            self._remember(sha, path.name, "rejected", outcome)
        else:
            log.info("drop folder: installed %s %s from %s", outcome.name, outcome.version, path.name)
            self._remember(sha, path.name, "installed", None, outcome)
            self._mark_processed(path, signature)
        if self.on_result is not None:
            self.on_result(path, outcome)

    def _mark_processed(self, path: Path, signature: _Signature) -> None:
        try:
            st = os.lstat(path)
        except OSError:
            return
        if _signature(st) == signature:  # not changed while it was being installed
            with self._cond:
                self._processed[path] = signature

    def _reject(self, path: Path, error: RunnerError, rename_only: bool = False) -> bool:
        """Move ``path`` to ``rejected/`` with its ``.error.json``; False (logged) if it cannot be moved.
        ``rename_only``: a special file is renamed, never copied (copying would open it)."""
        rejected = self.layout.rejected
        rejected.mkdir(parents=True, exist_ok=True)
        target = rejected / path.name
        if os.path.lexists(target):
            target = rejected / f"{path.stem}-{int(time.time() * 1000)}{path.suffix}"
        body = jsonable({**error.to_dict(), "zip": path.name, "rejected_at": utc_now()})
        error_file = target.with_name(target.name + ".error.json")
        write_json_atomic(error_file, body)
        try:
            if rename_only:
                os.rename(path, target)
            else:
                shutil.move(str(path), str(target))
        except OSError as exc:
            log.error("drop folder: cannot move %s to %s: %s; it is skipped until it changes", path, target, exc)
            error_file.unlink(missing_ok=True)  # no report without the file it describes
            return False
        with self._cond:
            self._processed.pop(path, None)
        return True

    # --- processed-zip memory -------------------------------------------------------------------

    def _remembered(self, sha: str) -> dict[str, Any] | None:
        state = self._load_state()
        entry = state.get(sha)
        return entry if isinstance(entry, dict) else None

    def _remember(self, sha: str, zip_name: str, outcome: str, error: RunnerError | None,
                  result: InstallResult | None = None) -> None:
        state = self._load_state()
        entry: dict[str, Any] = {"zip": zip_name, "outcome": outcome, "at": utc_now()}
        if error is not None:
            entry.update(json.loads(json.dumps(error.to_dict(), default=str)))
        if result is not None:
            entry.update(name=result.name, version=result.version)
        state[sha] = entry
        if len(state) > MAX_REMEMBERED:
            for old in sorted(state, key=lambda k: str(state[k].get("at", "")))[:len(state) - MAX_REMEMBERED]:
                del state[old]
        write_json_atomic(self.state_file, state)

    def _load_state(self) -> dict[str, Any]:
        try:
            state = read_json(self.state_file, default={})
        except ValueError:
            log.warning("%s is not valid JSON; starting a fresh processed-zip memory", self.state_file)
            return {}
        return state if isinstance(state, dict) else {}


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _central_directory_readable(path: Path) -> bool:
    """True once the zip's end records are there (they are written last). Only the end records are
    read: parsing a hostile central directory here would cost what the archive check avoids."""
    try:
        with os.fdopen(open_regular(path), "rb") as handle:
            read_end_record(handle)
    except (ZipProblem, OSError, ValueError, EOFError, NotRegularFile):
        return False
    return True
