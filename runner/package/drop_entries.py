"""What a drop-folder entry is, judged without following links or blocking: regular file or not,
finished name or one still being written, a zip whose end records are there yet, its content hash."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

from procvision_algorithm_sdk.zipsafety import ZipProblem, read_end_record

from .archive import CHUNK

#: Names of files still being written by common copy tools: never looked at until renamed.
IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".download")

#: What identifies "the same file, unchanged" between rescans without reading it: (inode, size, mtime_ns).
Signature = tuple[int, int, int]
#: Flags for every open of a drop file: never follow a symlink, never block on a FIFO.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class NotRegularFile(Exception):
    """A drop-folder entry that is not a regular file (``what`` says what it is)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def signature(st: os.stat_result) -> Signature:
    """The (inode, size, mtime_ns) of an ``lstat``/``fstat`` result."""
    return (st.st_ino, st.st_size, st.st_mtime_ns)


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


def hash_regular(path: Path) -> tuple[str, Signature]:
    """SHA-256 of a regular file opened without following links, and its (inode, size, mtime_ns)."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as handle:
        st = os.fstat(handle.fileno())
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest(), signature(st)


def is_in_progress_name(name: str) -> bool:
    """Dotfiles and names copy tools write under (``x.zip.part``): left alone until renamed."""
    return name.startswith(".") or name.lower().endswith(IGNORED_SUFFIXES)


def is_zip_name(name: str) -> bool:
    """A finished name ending in ``.zip`` (any case): a package candidate."""
    return not is_in_progress_name(name) and name.lower().endswith(".zip")



def central_directory_readable(path: Path) -> bool:
    """True once the zip's end records are there (they are written last). Only the end records are
    read: parsing a hostile central directory here would cost what the archive check avoids."""
    try:
        with os.fdopen(open_regular(path), "rb") as handle:
            read_end_record(handle)
    except (ZipProblem, OSError, ValueError, EOFError, NotRegularFile):
        return False
    return True
