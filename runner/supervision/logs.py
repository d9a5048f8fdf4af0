"""Worker stderr capture: a size-capped rotating log file plus an in-memory tail."""

from __future__ import annotations

import collections
import os
import threading
import time
from pathlib import Path


class RotatingLineLog:
    """Appends lines to ``path``; when it would pass ``max_bytes`` it rotates to ``path.1`` ..
    ``path.<backups>`` (the oldest is dropped). Keeps the last ``tail_lines`` lines in memory.

    Thread-safe: every worker process of a version writes into the same log.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int, tail_lines: int = 200) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "ab")  # noqa: SIM115 - kept open for the log's lifetime
        self._size = self._handle.tell()

    def write(self, line: str, prefix: str = "") -> None:
        """Record one line (without its newline). Never raises for disk trouble after the first warning:
        losing log lines must not take a worker down."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        text = f"{stamp} {prefix}{line}"
        data = (text + "\n").encode("utf-8", errors="replace")
        with self._lock:
            self._tail.append(f"{prefix}{line}")
            if self._handle.closed:
                return
            try:
                if self._size + len(data) > self.max_bytes and self._size > 0:
                    self._rotate()
                self._handle.write(data)
                self._handle.flush()
                self._size += len(data)
            except OSError as exc:
                self._tail.append(f"[runner] cannot write {self.path}: {exc}")

    def _rotate(self) -> None:
        self._handle.close()
        if self.backups <= 0:
            self.path.unlink(missing_ok=True)
        else:
            for index in range(self.backups - 1, 0, -1):
                src = self.path.with_name(f"{self.path.name}.{index}")
                if src.exists():
                    os.replace(src, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._handle = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def tail(self, n: int) -> list[str]:
        """The last ``n`` lines (oldest first)."""
        with self._lock:
            lines = list(self._tail)
        return lines[-n:] if n > 0 else []

    def close(self) -> None:
        with self._lock:
            if not self._handle.closed:
                self._handle.close()
