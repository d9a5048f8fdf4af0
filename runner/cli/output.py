"""What the CLI prints: JSON with ``--json``, otherwise short tables and lines for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

#: Install stages in the order the installer reports them (for the progress bar).
INSTALL_STAGES = ("checking", "extracting", "creating venv", "installing", "smoke test", "publishing")


def print_json(value: Any, out: TextIO | None = None) -> None:
    (out or sys.stdout).write(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ",".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], out: TextIO | None = None,
          empty: str = "(none)") -> None:
    """Print ``rows`` as an aligned table with ``columns`` as headers."""
    stream = out or sys.stdout
    if not rows:
        stream.write(empty + "\n")
        return
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    stream.write("  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        stream.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def fields(pairs: Sequence[tuple[str, Any]], out: TextIO | None = None) -> None:
    """Print ``key: value`` lines with aligned keys."""
    stream = out or sys.stdout
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        stream.write(f"{key.ljust(width)}  {_cell(value)}\n")


def error(message: str, err: TextIO | None = None) -> None:
    (err or sys.stderr).write(f"error: {message}\n")


class InstallProgress:
    """A one-line progress bar on a terminal (a line per stage otherwise), driven by operation polls."""

    def __init__(self, err: TextIO | None = None, width: int = 24) -> None:
        self.err = err or sys.stderr
        self.width = width
        self.seen: list[str] = []
        self._tty = bool(getattr(self.err, "isatty", lambda: False)())

    def update(self, op: dict[str, Any]) -> None:
        for stage in op.get("stages") or []:
            if stage not in self.seen:
                self.seen.append(stage)
                self._draw(stage)

    def _draw(self, stage: str) -> None:
        index = INSTALL_STAGES.index(stage) + 1 if stage in INSTALL_STAGES else len(self.seen)
        total = len(INSTALL_STAGES)
        filled = int(self.width * min(index, total) / total)
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"[{bar}] {min(index, total)}/{total} {stage}"
        if self._tty:
            self.err.write("\r\x1b[2K" + line)
        else:
            self.err.write(line + "\n")
        self.err.flush()

    def finish(self) -> None:
        if self._tty and self.seen:
            self.err.write("\n")
            self.err.flush()
