"""Reading a version's worker log from disk for ``RunnerService.log_tail`` (works while stopped)."""

from __future__ import annotations

from pathlib import Path

#: Name of the worker log file inside ``<root>/logs/<name>/<version>/``.
WORKER_LOG = "worker.log"
#: Bytes read per step backwards from the end of the log.
_STEP = 65536


def tail_lines(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of ``path``; reads backwards from the end so a large log costs only
    what is shown. A missing file (nothing logged yet) has no lines."""
    if lines <= 0:
        return []
    chunks: list[bytes] = []
    wanted = lines + 1
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            pos = handle.tell()
            newlines = 0
            while pos > 0 and newlines < wanted:
                step = min(_STEP, pos)
                pos -= step
                handle.seek(pos)
                chunk = handle.read(step)
                chunks.insert(0, chunk)
                newlines += chunk.count(b"\n")
    except FileNotFoundError:
        return []
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return text.splitlines()[-lines:]
