"""The drop folder (``<root>/zips/``): files put there are installed, one at a time, in the background.

A zip is picked up only when it is complete:

* renamed into the folder (a ``moved`` event: the rename is atomic), or
* closed after writing (Linux ``closed`` event), or found by a rescan, AND its size and mtime stayed the
  same for ``settings.drop_stable_s``, AND its central directory is readable;
* seen only as ``created``/``modified`` (e.g. moved in from an unwatched folder, which inotify reports
  as a creation) and then quiet for ``QUIET_FACTOR`` stable periods, AND its central directory is
  readable (a zip being copied has no end-of-central-directory record until its last bytes land).

Nothing is opened while ``created``/``modified`` events say it is being written. Names ending in
``.part``/``.tmp``/``.partial``/``.crdownload``/``.download`` and dotfiles are ignored (still being
written); any other finished name that does not end in ``.zip`` is rejected visibly once it is stable
(2001, moved to ``zips/rejected/``). The folder is rescanned at start, when the observer thread dies,
and every ``RESCAN_INTERVAL_S`` (inotify queue overflows lose events silently).

Only regular files count (drop_entries.py): a symlink is never followed and a FIFO, socket or device
is never opened (a FIFO would block the install thread forever). Such an entry is rejected visibly:
moved (renamed, never copied) to ``zips/rejected/``. Directories (``rejected/``, ``processed/``) are
ignored.

What happens to a complete file is drop_processing.py: each zip is processed once per content hash
(drop_memory.py, ``<root>/.drop-state.json``); where it goes and the log line that says so is
drop_outcomes.py: installed zips, and zips whose
content is already installed ("already installed" in the log), move to ``zips/processed/``; refused
ones to ``zips/rejected/`` with ``<file>.error.json`` (code, name, message, details); the installer
records a failed version in the registry when the manifest named it. A file that cannot be moved is
not hashed again while its (inode, size, mtime) stay the same.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from ..config import Settings
from ..errors import RunnerError
from .drop_entries import (
    Signature,
    central_directory_readable,
    describe_entry,
    is_in_progress_name,
    is_zip_name,
    signature,
)
from .drop_processing import DropProcessor
from .installer import Installer, InstallResult

log = logging.getLogger(__name__)

RESCAN_INTERVAL_S = 30.0
POLL_INTERVAL_S = 0.1
#: A zip that is stable but still has no readable central directory is handed to the installer
#: (which rejects it) after this many stable periods: it is broken, not being written.
UNREADABLE_GRACE_PERIODS = 5
#: A file seen being created or modified but never closed is taken after QUIET_FACTOR stable periods
#: (at least QUIET_MIN_S) without writes, and only if its central directory is readable.
QUIET_FACTOR = 4
QUIET_MIN_S = 2.0

OnResult = Callable[[Path, "InstallResult | RunnerError"], None]


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
    """Watches ``<root>/zips`` and installs complete zips on one background thread; moves each
    processed file out of the folder (drop_outcomes.py)."""

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
        self.processor = DropProcessor(self.layout, installer)
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
        # Files processed that could not be moved out of zips/, by (inode, size, mtime_ns): a rescan
        # does not hash them again.
        self._processed: dict[Path, Signature] = {}
        # Entries already reported as impossible to move aside (logged once, then skipped).
        self._stuck: dict[Path, Signature] = {}

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
            if is_in_progress_name(name):
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

    @property
    def observer(self) -> BaseObserver | None:
        """The thread watching the folder (None before ``start``); replaced by a new one if it dies."""
        return self._observer

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
        return path.parent == self.folder and not is_in_progress_name(path.name)

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
                if self._stuck.get(path) != signature(st):
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
            if self._processed.get(path) == signature(st):
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
            if is_zip_name(path.name) and not central_directory_readable(path):
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
        error, moved = self.processor.refuse_special(path, what)
        if not moved:
            with self._cond:
                self._stuck[path] = signature(st)
        if self.on_result is not None:
            self.on_result(path, error)
        return True

    def _process(self, path: Path) -> None:
        done = self.processor.process(path)
        with self._cond:
            if done.not_regular is not None:
                self._special[path] = done.not_regular
            if done.unmoved is not None:
                self._processed[path] = done.unmoved
            else:
                self._processed.pop(path, None)
        if done.retry:
            self._offer(path, done_writing=True)
        if done.outcome is not None and self.on_result is not None:
            self.on_result(path, done.outcome)
