"""Guard the protocol stream from algorithm output.

The protocol owns the process's original stdout and stdin. After ``protect_stdio()`` fd 1 is a
copy of stderr (so ``print()``, C extensions and child processes writing to fd 1 end up in the
log), fd 0 reads /dev/null (so nothing in the algorithm can swallow frames), and the adapter keeps
private, non-inheritable duplicates of the originals.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO, NamedTuple


class ProtocolStreams(NamedTuple):
    """The adapter's private ends of the protocol: frames in, frames out."""

    inp: BinaryIO
    out: BinaryIO


def protect_stdio() -> ProtocolStreams:
    """Move the protocol to private fds and point fds 0/1 at /dev/null and stderr."""
    if sys.stdout is not None:
        sys.stdout.flush()
    out_fd = os.dup(1)  # os.dup returns a non-inheritable fd: children never get the protocol
    in_fd = os.dup(0)
    os.dup2(2, 1)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.close(null_fd)
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    return ProtocolStreams(inp=os.fdopen(in_fd, "rb", buffering=0), out=os.fdopen(out_fd, "wb"))
