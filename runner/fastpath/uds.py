"""The API's Unix socket (``serve --uds PATH``): for local clients, readable by the daemon's user only."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

from runner.errors import PackageErrorCode, RunnerError


def bind_unix(path: Path) -> socket.socket:
    """Bind a listening-ready AF_UNIX socket at ``path`` (mode 0600).

    A socket file left by a daemon that died is replaced; one another daemon still serves on, or
    any other kind of file, is refused with 2016 (port_in_use) naming the path.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise RunnerError(PackageErrorCode.PORT_IN_USE, f"{path} exists and is not a socket; choose another "
                              "--uds path or remove the file", path=str(path))
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # nobody listens: a leftover of a daemon that did not stop cleanly
        else:
            raise RunnerError(PackageErrorCode.PORT_IN_USE, f"another process serves on {path}; stop it or choose "
                              "another --uds path", path=str(path))
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket is created 0600: no window where others could connect
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise RunnerError(PackageErrorCode.PORT_IN_USE, f"cannot bind the Unix socket {path}: {exc}",
                          path=str(path)) from exc
    finally:
        os.umask(old)
    sock.set_inheritable(True)
    return sock


def close_unix(sock: socket.socket, path: Path) -> None:
    """Close the socket and remove its file."""
    sock.close()
    with contextlib.suppress(FileNotFoundError):
        Path(path).unlink()
