"""Segments a killed runner left behind: ``remove_stale_segments`` frees the old ones nobody holds."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from procvision_algorithm_sdk.shared_memory import SHM_PREFIX

from .segment_files import LEASE_SIGNAL

#: ``remove_stale_segments`` leaves younger files alone (a call's segment may not be opened yet).
STALE_SEGMENT_AGE_S = 300.0


@dataclass
class StaleSweep:
    """What ``remove_stale_segments`` did: names removed, old ones kept because held, and errors."""

    removed: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def remove_stale_segments(shm_dir: str | Path, older_than_s: float = STALE_SEGMENT_AGE_S,
                          prefix: str = SHM_PREFIX) -> StaleSweep:
    """Remove ``pvshm-*`` files (or ``prefix``-named ones) in ``shm_dir`` last modified more than
    ``older_than_s`` seconds ago that no process has open or mapped (the lease test of ``unused_elsewhere``).

    For a runner's start: a runner killed mid-call (or holding recycled spares) leaves named
    segments behind. A live runner's segments are kept: it holds every spare open, and a call's
    segment is younger than the age limit. A file whose state cannot be proved (lease refused for
    another reason than use) is kept and reported in ``errors``. Never raises for a single file.
    """
    sweep = StaleSweep()
    directory = str(shm_dir)
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return sweep
    except OSError as exc:
        sweep.errors.append(f"{directory}: {exc}")
        return sweep
    try:
        cutoff = time.time() - older_than_s
        for name in os.listdir(dir_fd):
            if name.startswith(prefix):
                _sweep_one(dir_fd, name, cutoff, sweep)
    except OSError as exc:
        sweep.errors.append(f"{directory}: {exc}")
    finally:
        os.close(dir_fd)
    return sweep


def _sweep_one(dir_fd: int, name: str, cutoff: float, sweep: StaleSweep) -> None:
    try:
        # O_NONBLOCK: a file another runner holds a lease on at this instant fails with EWOULDBLOCK
        # instead of blocking; O_NOFOLLOW: a symlink is never followed out of the folder.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno == errno.EWOULDBLOCK:
            sweep.held.append(name)
        elif exc.errno == errno.ELOOP:
            sweep.errors.append(f"{name}: a symbolic link, not a segment; left alone")
        else:
            sweep.errors.append(f"{name}: {exc}")
        return
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_mtime > cutoff:
            return
        fcntl.fcntl(fd, fcntl.F_SETSIG, LEASE_SIGNAL)
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EBUSY):
                sweep.held.append(name)
            else:
                sweep.errors.append(f"{name}: cannot tell whether it is in use (file lease refused: {exc})")
            return
        try:
            # Held under the lease: nobody can open it meanwhile without waiting for the release.
            # Unlink only the file that was tested, not one put there under the same name since.
            if os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_ino == st.st_ino:
                os.unlink(name, dir_fd=dir_fd)
                sweep.removed.append(name)
        finally:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    except FileNotFoundError:
        return
    except OSError as exc:
        sweep.errors.append(f"{name}: {exc}")
    finally:
        os.close(fd)


__all__ = ["STALE_SEGMENT_AGE_S", "StaleSweep", "remove_stale_segments"]
