"""Entry names and entry types: what may be written to disk at all."""

from __future__ import annotations

import re
import stat
import zipfile

from .limits import MAX_COMPONENT_BYTES, MAX_DEPTH, MAX_NAME_BYTES, ZipProblem

_DRIVE = re.compile(r"\A[A-Za-z]:")
_UNIX = 3
_DOS_DIR = 0x10
_DOS_REPARSE_POINT = 0x400


def entry_kind(info: zipfile.ZipInfo) -> tuple[str, int]:
    """('file' | 'dir' | a description of the non-regular kind, permission bits)."""
    is_dir_name = info.filename.endswith("/")
    if info.create_system == _UNIX:
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == 0:  # no type recorded: trust the name
            return ("dir" if is_dir_name else "file"), stat.S_IMODE(mode)
        if stat.S_ISREG(kind):
            return ("file" if not is_dir_name else "a file entry named like a folder"), stat.S_IMODE(mode)
        if stat.S_ISDIR(kind):
            return ("dir" if is_dir_name else "a folder entry without a trailing '/'"), stat.S_IMODE(mode)
        names = {stat.S_IFLNK: "a symbolic link", stat.S_IFCHR: "a character device",
                 stat.S_IFBLK: "a block device", stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket"}
        return names.get(kind, f"a non-regular entry (type {kind:o})"), 0
    dos = info.external_attr & 0xFFFF
    if dos & _DOS_REPARSE_POINT:
        return "a reparse point (link)", 0
    if dos & _DOS_DIR and not is_dir_name:
        return "a folder entry without a trailing '/'", 0
    return ("dir" if is_dir_name else "file"), 0


def check_name(info: zipfile.ZipInfo) -> None:
    """ZipProblem naming the entry if its name could escape the extraction folder, is not portable,
    or is longer or deeper than a Linux file system holds."""
    raw = info.orig_filename
    if raw != info.filename:
        raise ZipProblem(f"entry {raw!r} has a name with a NUL byte or a platform separator", raw)
    if not raw or raw == "/":
        raise ZipProblem("the archive has an entry with an empty name", raw)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise ZipProblem(f"entry {raw!r} has control characters in its name", raw)
    if "\\" in raw:
        raise ZipProblem(f"entry {raw!r} uses a backslash; zip paths must use '/'", raw)
    if raw.startswith("/"):
        raise ZipProblem(f"entry {raw!r} has an absolute path", raw)
    if _DRIVE.match(raw):
        raise ZipProblem(f"entry {raw!r} starts with a drive letter", raw)
    size = len(raw.encode("utf-8", "surrogateescape"))
    if size > MAX_NAME_BYTES:
        raise ZipProblem(f"entry {raw[:60]!r}... has a {size}-byte name; the limit is {MAX_NAME_BYTES} bytes",
                         raw, limit=MAX_NAME_BYTES)
    parts = raw.rstrip("/").split("/")
    if len(parts) > MAX_DEPTH:
        raise ZipProblem(f"entry {raw[:60]!r}... is nested {len(parts)} folders deep; the limit is {MAX_DEPTH}",
                         raw, depth=len(parts), limit=MAX_DEPTH)
    for part in parts:
        if part == "..":
            raise ZipProblem(f"entry {raw!r} has a '..' segment that would escape the package folder", raw)
        if part in ("", "."):
            raise ZipProblem(f"entry {raw!r} has an empty or '.' path segment", raw)
        length = len(part.encode("utf-8", "surrogateescape"))
        if length > MAX_COMPONENT_BYTES:
            raise ZipProblem(f"entry {raw!r} has a {length}-byte path component; file systems allow "
                             f"{MAX_COMPONENT_BYTES}", raw, component=part[:60], limit=MAX_COMPONENT_BYTES)
