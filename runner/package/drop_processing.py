"""What happens to one drop-folder file once the watcher judges it complete: hashed, looked up in the
processed-content memory, installed (or refused), moved out of ``zips/`` and logged. The watcher
(watcher.py) decides *when*; this module decides *what*, and answers with a ``Processed`` that tells
the watcher how to update its own bookkeeping."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import PackageErrorCode, RunnerError
from ..store.layout import RootLayout
from .drop_entries import NotRegularFile, Signature, hash_regular, is_zip_name, signature
from .drop_memory import DropMemory
from .drop_outcomes import DropOutcomes
from .installer import Installer, InstallResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processed:
    """The result of processing one entry, for the watcher."""

    #: What to report through ``on_result`` (None: nothing new happened, e.g. known content).
    outcome: InstallResult | RunnerError | None = None
    #: The entry turned out not to be a regular file: what it is (the watcher moves it aside).
    not_regular: str | None = None
    #: Another operation held the lock (2011): offer the file again later.
    retry: bool = False
    #: Processed, but it could not be moved out of ``zips/``: skip it while its signature is this.
    unmoved: Signature | None = None


class DropProcessor:
    """Processes complete drop-folder files one at a time (the watcher's install thread calls it)."""

    def __init__(self, layout: RootLayout, installer: Installer) -> None:
        self.installer = installer
        self.memory = DropMemory(layout.drop_state_file)
        self.outcomes = DropOutcomes(layout)

    def process(self, path: Path) -> Processed:
        """Install ``path`` (a complete regular file in the drop folder) or refuse it, and move it out."""
        if not is_zip_name(path.name):
            return self._refuse_non_zip(path)
        try:
            sha, sig = hash_regular(path)
        except NotRegularFile as exc:
            return Processed(not_regular=exc.what)
        except OSError as exc:
            log.warning("drop folder: %s vanished before it could be read: %s", path.name, exc.strerror or exc)
            return Processed()
        seen = self.memory.recall(sha)
        if seen is not None:
            if seen.error is not None:
                return Processed(unmoved=_unmoved(path, sig, self.outcomes.reject(path, seen.error)))
            label = f"{seen.name} {seen.version}" if seen.name else "its content"
            earlier = f"dropped before as {seen.zip}" if seen.zip and seen.zip != path.name else "dropped before"
            moved = self.outcomes.archive(path, f"already installed ({label}, {earlier})")
            return Processed(unmoved=_unmoved(path, sig, moved))
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
            return Processed(retry=True)
        if isinstance(outcome, RunnerError):
            moved = self.outcomes.reject(path, outcome)
            self.memory.remember(sha, path.name, "rejected", error=outcome)
        else:
            what = (f"already installed ({outcome.name} {outcome.version})" if outcome.idempotent
                    else f"installed {outcome.name} {outcome.version}")
            self.memory.remember(sha, path.name, "installed", name=outcome.name, version=outcome.version)
            moved = self.outcomes.archive(path, what)
        return Processed(outcome=outcome, unmoved=_unmoved(path, sig, moved))

    def refuse_special(self, path: Path, what: str) -> tuple[RunnerError, bool]:
        """Move an entry that is not a regular file aside (renamed, never opened); the error and
        whether it could be moved."""
        error = RunnerError(PackageErrorCode.INVALID_ZIP,
                            f"zips/{path.name} is {what}, not a regular file; the drop folder never follows "
                            "links nor opens special files: copy or move the zip file itself into zips/",
                            entry=path.name, file_type=what)
        return error, self.outcomes.reject(path, error, rename_only=True) is not None

    def _refuse_non_zip(self, path: Path) -> Processed:
        """A finished file that is not a ``.zip``: rejected visibly, never opened."""
        try:
            st = os.lstat(path)
        except OSError:
            return Processed()
        error = RunnerError(PackageErrorCode.INVALID_ZIP,
                            f"zips/{path.name} is not a package: the drop folder installs only "
                            "<name>-v<version>-offline.zip files (build one with `procvision-cli package`)",
                            entry=path.name)
        moved = self.outcomes.reject(path, error)
        return Processed(outcome=error, unmoved=_unmoved(path, signature(st), moved))


def _unmoved(path: Path, sig: Signature, moved_to: Path | None) -> Signature | None:
    """The signature to skip ``path`` by when it could not be moved and did not change meanwhile."""
    if moved_to is not None:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return sig if signature(st) == sig else None
