"""Wait until a daemon has finished the background work an install leaves, before measuring it.

After an install the daemon compiles the new venv's bytecode in the background (one core for a few
seconds; runner/package/bytecode.py). A benchmark that starts right after the install measures that
compile too: on two cores it takes half the machine from the workers. Stations serve long after
their installs, so the figures are taken once it has ended.
"""

from __future__ import annotations

import time
from pathlib import Path


def background_compiles(pid: int) -> list[int]:
    """Process ids of the ``compileall`` children of process ``pid`` running now."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            child_pids = [int(p) for p in children.read_text(encoding="ascii").split()]
        except OSError:
            continue  # the thread ended meanwhile
        for child in child_pids:
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"compileall" in argv:
                found.append(child)
    return found


def wait_until_settled(pid: int, timeout_s: float = 600.0) -> float:
    """Wait until daemon ``pid`` compiles nothing in the background; returns the seconds waited."""
    started = time.monotonic()
    while background_compiles(pid):
        if time.monotonic() - started > timeout_s:
            raise SystemExit(f"the daemon's background bytecode compile did not end within {timeout_s:g} s")
        time.sleep(0.1)
    return time.monotonic() - started
