"""How a worker slot words what happened to its processes, for logs, errors and outcomes."""

from __future__ import annotations

import signal

#: stderr lines kept in errors and outcomes.
TAIL_LINES = 20
#: Characters of worker output quoted in a message.
QUOTE_CHARS = 300


def short_text(text: str, limit: int = QUOTE_CHARS) -> str:
    """``text`` on one line and at most ``limit`` characters: a multi-line text (a traceback) keeps
    its first and last lines, which name where and what."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    one = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}" if lines else ""
    return one if len(one) <= limit else one[:limit - 1] + "\u2026"


def exit_text(code: int | None) -> str:
    """How a process ended, for people: ``exit code 7`` or ``killed by SIGKILL``."""
    if code is None:
        return "exit code unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
