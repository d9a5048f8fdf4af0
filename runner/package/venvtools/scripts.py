"""Console scripts that start the venv they sit in, wherever that venv was moved to.

An installer writes each console script (``f2py``, ``procvision-cli``...) with the absolute path of an
interpreter in its first line. The runner builds a venv in ``.staging/`` and publishes it with a
rename, so that path would name a folder that no longer exists; and uv installing with ``--prefix``
(``uv.py``) names the base interpreter, which would run the script without the venv's packages.
``relocate_scripts`` rewrites such a first line into a launcher that runs the ``python`` next to
the script, and updates the script's hash and size in its distribution's ``RECORD``.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)

#: A shell line that Python reads as a string: sh runs the ``python`` beside the script (the script
#: itself, not a link to it), which then reads the rest of the file as Python (the string is a no-op).
LAUNCHER = b"#!/bin/sh\n'''exec' \"$(dirname -- \"$(realpath -- \"$0\")\")/python\" \"$0\" \"$@\"\n' '''\n"
#: A source encoding declaration (PEP 263); it only counts on a file's first two lines.
_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
#: How much of a file is read to recognise its launch lines.
_HEAD_MAX = 8192
_SH = b"#!/bin/sh"
_SH_END = b"' '''"


def _body_offset(head: bytes, interpreter: bytes) -> int | None:
    """Where the Python code starts in a script whose launch lines run ``interpreter``; None when
    they run something else. Two forms: a ``#!<interpreter>`` line, and, for a path a shebang
    cannot hold (long, or with spaces), the ``#!/bin/sh`` form whose second line execs it."""
    lines = head.splitlines(keepends=True)
    if not lines:
        return None
    if lines[0].rstrip(b"\r\n") == b"#!" + interpreter:
        return len(lines[0])
    if len(lines) < 3 or lines[0].rstrip(b"\r\n") != _SH or lines[2].rstrip(b"\r\n") != _SH_END:
        return None
    args = b' "$0" "$@"'
    runs = {b"'''exec' " + quoted + args
            for quoted in (interpreter, b"'" + interpreter + b"'", b'"' + interpreter + b'"')}
    if lines[1].rstrip(b"\r\n") not in runs:
        return None
    return len(lines[0]) + len(lines[1]) + len(lines[2])


def relocate_scripts(venv_dir: Path, interpreter: str) -> list[Path]:
    """Rewrite the scripts in ``venv_dir/bin`` whose launch lines run ``interpreter`` (see the module
    docstring); returns the scripts rewritten. Other files (the venv's own links, activation scripts,
    a script naming another interpreter) are left as they are."""
    wanted = os.fsencode(interpreter)
    rewritten: list[Path] = []
    for path in sorted((venv_dir / "bin").iterdir()):
        if path.is_symlink() or not path.is_file():
            continue
        with open(path, "rb") as handle:
            offset = _body_offset(handle.read(_HEAD_MAX), wanted)
            if offset is None:
                continue
            handle.seek(offset)
            rest = handle.read()
        if not _utf8_source(rest):
            # The launcher's lines would push its encoding declaration past line 2, where Python no
            # longer reads it; such a script keeps its launch line.
            log.warning("not relocating %s: it declares a source encoding other than UTF-8", path)
            continue
        _replace(path, LAUNCHER + rest)
        rewritten.append(path)
    if rewritten:
        _update_records(venv_dir, {os.path.normpath(p) for p in rewritten})
    return rewritten


def _utf8_source(body: bytes) -> bool:
    """Whether ``body`` reads as UTF-8 Python source when it starts on the launcher's line 4."""
    for line in body.split(b"\n", 2)[:2]:
        found = _CODING.match(line)
        if found is not None:
            return found.group(1).decode("ascii", "replace").lower().replace("_", "-") in ("utf-8", "utf8")
    return True


def _replace(path: Path, content: bytes) -> None:
    mode = path.stat().st_mode & 0o7777
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(tmp, mode)  # the umask may have narrowed it
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _record_hash(content: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def _update_records(venv_dir: Path, scripts: set[str]) -> None:
    """Give the rewritten scripts (normalised paths) their new hash and size in the ``RECORD`` that
    lists them. Only the lines naming a ``bin/`` file are parsed: numpy's RECORD has ~1,500 lines."""
    for record in venv_dir.glob("lib/python*/site-packages/*.dist-info/RECORD"):
        site = str(record.parent.parent)
        # Bytes, not read_text: universal newlines would turn the "\r\n" rows pip writes into "\n".
        lines = record.read_bytes().decode("utf-8").split("\n")
        changed = False
        for index, line in enumerate(lines):
            if "bin/" not in line:
                continue
            row = next(csv.reader([line.rstrip("\r")]), [])
            if len(row) < 3:
                continue
            target = os.path.normpath(os.path.join(site, row[0]))
            if target not in scripts:
                continue
            with open(target, "rb") as handle:
                content = handle.read()
            out = io.StringIO()
            csv.writer(out, lineterminator="").writerow([row[0], _record_hash(content), str(len(content))])
            lines[index] = out.getvalue() + ("\r" if line.endswith("\r") else "")
            changed = True
        if changed:
            _replace(record, "\n".join(lines).encode("utf-8"))
