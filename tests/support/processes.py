"""What a test can learn about processes from /proc."""

from __future__ import annotations

from pathlib import Path


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (read them before the parent is killed: orphans are re-parented)."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        for task in Path(f"/proc/{frontier.pop()}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(kids)
            frontier.extend(kids)
    return found
