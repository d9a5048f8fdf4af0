"""Disk full: one error (2017 disk_full, HTTP 507) for every write under the root that ran out of space.

``ENOSPC`` (no space left) and ``EDQUOT`` (quota exceeded) mean the same to an operator: free space
or enlarge the disk, then retry. ``DiskFullError`` is a ``RunnerError`` *and* an ``OSError``, so code
that already handles a failed write as an ``OSError`` keeps doing so, while the API and the CLI see
the code.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from ..errors import PackageErrorCode, RunnerError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFullError(RunnerError, OSError):
    """RunnerError 2017 disk_full raised for an ENOSPC/EDQUOT write failure."""

    def __str__(self) -> str:
        return f"[{self.code} {self.name}] {self.message}"


def is_disk_full(exc: BaseException | None) -> bool:
    """True if ``exc`` or an exception it was raised from is an out-of-space ``OSError``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFullError) or (isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full(path: Path | str, what: str, exc: BaseException | None = None, **details: Any) -> DiskFullError:
    """The 2017 error for ``what`` failing at ``path`` because the disk (or quota) is full."""
    why = "disk quota exceeded" if isinstance(exc, OSError) and exc.errno == errno.EDQUOT else "no space left"
    err = DiskFullError(PackageErrorCode.DISK_FULL,
                        f"{what} failed: {why} on the disk holding {path}; nothing was changed. Free space "
                        "(uninstall old versions, delete rotated logs) or enlarge the disk, then retry",
                        path=str(path), **details)
    err.errno = errno.EDQUOT if why.startswith("disk quota") else errno.ENOSPC
    err.strerror = os.strerror(err.errno)
    return err


def raise_if_disk_full(exc: BaseException, path: Path | str, what: str, **details: Any) -> None:
    """Re-raise ``exc`` as ``DiskFullError`` when it means the disk is full; otherwise return."""
    if isinstance(exc, DiskFullError):
        raise exc
    if is_disk_full(exc):
        raise disk_full(path, what, exc, **details) from exc


def failure_text_says_disk_full(error: RunnerError) -> bool:
    """True if a child process's output carried in ``error`` (uv, pip) reports the disk full."""
    texts = " ".join(str(v) for v in error.details.values() if isinstance(v, str))
    return any(os.strerror(number) in texts for number in DISK_FULL_ERRNOS)


def as_runner_error(exc: BaseException, path: Path | str, what: str) -> RunnerError:
    """``exc`` as the RunnerError to report: 2017 when it means the disk is full (also when an
    ``OSError`` was wrapped into another code, or a child process said so), else ``exc`` itself when it
    is a RunnerError, else 2005 install_failed naming the OS error."""
    if isinstance(exc, DiskFullError):
        return exc
    if is_disk_full(exc) or (isinstance(exc, RunnerError) and exc.code == PackageErrorCode.INSTALL_FAILED.value
                             and failure_text_says_disk_full(exc)):
        return disk_full(path, what, exc if isinstance(exc, OSError) else None)
    if isinstance(exc, RunnerError):
        return exc
    return RunnerError(PackageErrorCode.INSTALL_FAILED, f"{what} failed: {type(exc).__name__}: {exc}")
