"""Guard the protocol stream from algorithm output.

The protocol owns the process's original stdout and stdin. After ``protect_stdio()`` fd 1 is a
copy of stderr (so ``print()``, C extensions and child processes writing to fd 1 end up in the
log), fd 0 reads /dev/null (so nothing in the algorithm can swallow frames), and the adapter keeps
private, non-inheritable duplicates of the originals.

Strict mode (``PROC_STRICT_STDIO=1``, as in the public adapter): fd 1 becomes a pipe that a thread
copies to stderr, counting what arrives while a call runs, so the adapter can answer a call that
wrote to stdout with 1010 stdout_contaminated instead of its result.
"""

from __future__ import annotations

import io
import os
import select
import sys
import threading
from collections.abc import Mapping
from typing import BinaryIO, NamedTuple

STRICT_ENV = "PROC_STRICT_STDIO"
_TRUE = {"1", "true", "yes", "on"}
_PREVIEW_BYTES = 400


class ProtocolStreams(NamedTuple):
    """The adapter's private ends of the protocol: frames in, frames out (and the strict watch)."""

    inp: BinaryIO
    out: BinaryIO
    watch: StdoutWatch | None = None


def strict_requested(env: Mapping[str, str]) -> bool:
    """True if ``$PROC_STRICT_STDIO`` asks for strict mode (1/true/yes/on, any case)."""
    return str(env.get(STRICT_ENV) or "").strip().lower() in _TRUE


class StdoutWatch:
    """Copies what reaches fd 1 (a pipe) to stderr and counts the bytes written while armed.

    The pipe is read under the same lock ``disarm`` takes, and ``disarm`` adds what is still in the
    pipe (``FIONREAD``): the count is exact without waiting for the copying thread.
    """

    def __init__(self, read_fd: int, err_fd: int) -> None:
        self._fd = read_fd
        self._err_fd = err_fd
        self._lock = threading.Lock()
        self._armed = False
        self._count = 0
        self._baseline = 0
        self._preview = b""
        self._thread = threading.Thread(target=self._pump, name="adapter-stdout-watch", daemon=True)
        self._thread.start()

    def _pending(self) -> int:
        import fcntl
        import termios

        buf = fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0")
        return int.from_bytes(buf, sys.byteorder)

    def _pump(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self._fd], [], [], 1.0)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            with self._lock:
                try:
                    chunk = os.read(self._fd, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                if self._armed:
                    self._count += len(chunk)
                    if len(self._preview) < _PREVIEW_BYTES:
                        self._preview += chunk[:_PREVIEW_BYTES - len(self._preview)]
            try:
                os.write(self._err_fd, chunk)
            except OSError:
                continue

    def arm(self) -> None:
        """Start counting (a call begins). Bytes already in the pipe are not the call's."""
        _flush_stdout()
        with self._lock:
            self._armed = True
            self._count = 0
            self._preview = b""
            self._baseline = self._pending()

    def disarm(self) -> tuple[int, str]:
        """Stop counting (the call returned); returns (bytes the call wrote to stdout, a sample)."""
        _flush_stdout()
        with self._lock:
            self._armed = False
            written = max(0, self._count + self._pending() - self._baseline)
            return written, self._preview.decode("utf-8", errors="replace")


def _flush_stdout() -> None:
    for stream in (sys.stdout, sys.__stdout__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            continue


def protect_stdio(strict: bool = False) -> ProtocolStreams:
    """Move the protocol to private fds and point fds 0/1 at /dev/null and stderr (or, ``strict``,
    at a watched pipe whose content is copied to stderr)."""
    if sys.stdout is not None:
        sys.stdout.flush()
    out_fd = os.dup(1)  # os.dup returns a non-inheritable fd: children never get the protocol
    in_fd = os.dup(0)
    watch: StdoutWatch | None = None
    if strict and sys.platform != "win32":
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 1)
        os.close(write_fd)
        watch = StdoutWatch(read_fd, 2)
        # print() must really reach fd 1 to be seen; unbuffered so each call's output is counted
        # in that call.
        sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(1), "wb", buffering=0), encoding="utf-8",
                                      errors="replace", line_buffering=True, write_through=True)
    else:
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.close(null_fd)
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    return ProtocolStreams(inp=os.fdopen(in_fd, "rb", buffering=0), out=os.fdopen(out_fd, "wb"), watch=watch)
