"""Structured logging for algorithms and the adapter: one JSON object per line, on stderr.

stdout belongs to the worker protocol, so this logger refuses to write there: asking for
``sys.stdout`` as the sink silently becomes stderr.
"""

from __future__ import annotations

import io
import json
import sys
import time
from typing import IO, Any

LEVELS = ("debug", "info", "warning", "error")


class StructuredLogger:
    """Writes ``{"level", "timestamp_ms", "message", ...fields}`` lines to stderr (or ``sink``).

    Extra keyword fields are merged into the record; values that are not JSON are written with
    ``str()`` so a log call never raises.
    """

    def __init__(self, sink: IO[str] | None = None, **bound: Any) -> None:
        self._sink = sink
        self._bound: dict[str, Any] = dict(bound)

    @property
    def sink(self) -> IO[str]:
        # Resolved on every write: the adapter swaps sys.stdout/sys.stderr after algorithms may
        # already have built their logger, and stdout must never receive a log line.
        sink = self._sink
        if sink is None or sink is sys.stdout or sink is sys.__stdout__:
            sink = sys.stderr if sys.stderr is not None else sys.__stderr__
        if sink is None:  # no stderr at all (pythonw): drop logs rather than fail the caller
            return _NullSink()
        return sink

    def bind(self, **fields: Any) -> StructuredLogger:
        """A logger writing to the same sink that adds ``fields`` to every record."""
        merged = dict(self._bound)
        merged.update(fields)
        return StructuredLogger(self._sink, **merged)

    def _emit(self, level: str, message: str, fields: dict[str, Any]) -> None:
        record: dict[str, Any] = {"level": level, "timestamp_ms": int(time.time() * 1000), "message": str(message)}
        record.update(self._bound)
        record.update(fields)
        line = json.dumps(record, ensure_ascii=False, default=str)
        sink = self.sink
        sink.write(line + "\n")
        sink.flush()

    def debug(self, message: str, **fields: Any) -> None:
        self._emit("debug", message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._emit("info", message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._emit("warning", message, fields)

    warn = warning

    def error(self, message: str, **fields: Any) -> None:
        self._emit("error", message, fields)


class _NullSink(io.StringIO):
    """Discards what is written."""

    def write(self, s: str) -> int:
        return len(s)
