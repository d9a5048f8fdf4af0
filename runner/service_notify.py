"""Talk to the service manager (systemd ``Type=notify``): READY=1, STOPPING=1, WATCHDOG=1.

The protocol is one datagram per message on the ``AF_UNIX`` socket systemd names in NOTIFY_SOCKET
(an abstract socket when the name starts with ``@``). Without a socket every call does nothing, so
the daemon runs the same under systemd, in a terminal and in tests. The environment is read by
``Settings`` (``notify_socket``, ``watchdog_usec``), never here.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

_log = logging.getLogger("runner.service_notify")
#: A datagram that cannot be sent at once is dropped: the daemon must never wait on systemd.
SEND_TIMEOUT_S = 1.0


def socket_address(name: str) -> str | bytes:
    """The address of NOTIFY_SOCKET ``name``: a path, or an abstract name (``@x`` -> ``b"\\0x"``)."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode("utf-8")
    return name


class ServiceNotifier:
    """Sends sd_notify messages to ``notify_socket``; every method is a no-op without one.

    A failed send is logged once and otherwise ignored: losing the service manager must not stop
    the daemon (systemd then restarts it if it expected a watchdog ping).
    """

    def __init__(self, notify_socket: str | None) -> None:
        self.address = socket_address(notify_socket) if notify_socket else None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields as one datagram; True when it was delivered."""
        if self.address is None:
            return False
        payload = "\n".join(fields).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(SEND_TIMEOUT_S)
                sock.sendto(payload, self.address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                _log.warning("cannot notify the service manager at %r: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """The API serves and the active versions' workers are up."""
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self, status: str = "") -> bool:
        """The daemon drains: no new work, running calls finish."""
        return self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")


class WatchdogPinger:
    """Pings the watchdog at half the interval systemd expects, from the daemon's event loop.

    ``tick()`` is called on every turn of the loop (uvicorn's ``on_tick``); it pings when half of
    ``watchdog_usec`` passed since the last ping. A stuck loop stops ticking, so the pings stop and
    systemd restarts the daemon: the pings prove the daemon still serves, not only that it exists.
    ``healthy()`` can veto a ping (e.g. once draining has begun).
    """

    def __init__(self, notifier: ServiceNotifier, watchdog_usec: int | None,
                 healthy: Callable[[], bool] = lambda: True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier
        self.interval_s = watchdog_usec / 2_000_000 if watchdog_usec and notifier.enabled else None
        self.healthy = healthy
        self.clock = clock
        self._last: float | None = None
        self.pings = 0

    @property
    def enabled(self) -> bool:
        return self.interval_s is not None

    def tick(self) -> bool:
        """Ping if due and healthy; True when a ping was sent."""
        if self.interval_s is None:
            return False
        now = self.clock()
        if self._last is not None and now - self._last < self.interval_s:
            return False
        if not self.healthy():
            return False
        self._last = now
        if self.notifier.watchdog():
            self.pings += 1
            return True
        return False
