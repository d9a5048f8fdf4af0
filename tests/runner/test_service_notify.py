"""sd_notify: READY=1 / STOPPING=1 / WATCHDOG=1 datagrams on a real AF_UNIX socket, and the daemon's use of them."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runner.service_notify import ServiceNotifier, WatchdogPinger, socket_address
from tests.api.support import start_server
from tests.support.waiting import wait_until


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    yield str(path), sock
    sock.close()


def _messages(sock: socket.socket, until: str, timeout_s: float = 60.0) -> list[str]:
    """Datagrams received until one contains ``until``."""
    got: list[str] = []
    sock.settimeout(timeout_s)
    while not any(until in m for m in got):
        got.append(sock.recv(4096).decode())
    return got


def test_ready_and_stopping_reach_a_path_socket(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = ServiceNotifier(path)
    assert notifier.ready("serving http://127.0.0.1:1")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving http://127.0.0.1:1"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"


def test_abstract_socket_names_start_with_at() -> None:
    name = f"procvision-test-{uuid.uuid4().hex}"
    assert socket_address("@" + name) == b"\0" + name.encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(30)
        assert ServiceNotifier("@" + name).ready()
        assert sock.recv(4096) == b"READY=1"


def test_without_a_socket_nothing_is_sent() -> None:
    notifier = ServiceNotifier(None)
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.stopping() and not notifier.watchdog()


def test_a_vanished_socket_is_not_an_error(tmp_path: Path) -> None:
    notifier = ServiceNotifier(str(tmp_path / "nobody-listens.sock"))
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_watchdog_pings_at_half_the_interval_while_healthy(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    now = [100.0]
    healthy = [True]
    pinger = WatchdogPinger(ServiceNotifier(path), 2_000_000, healthy=lambda: healthy[0], clock=lambda: now[0])
    assert pinger.interval_s == 1.0
    assert pinger.tick()  # the first tick pings at once
    now[0] += 0.5
    assert not pinger.tick()
    now[0] += 0.6
    assert pinger.tick()
    healthy[0] = False
    now[0] += 5
    assert not pinger.tick()
    assert [sock.recv(4096), sock.recv(4096)] == [b"WATCHDOG=1", b"WATCHDOG=1"]
    assert pinger.pings == 2


def test_watchdog_is_off_without_an_interval_or_a_socket(listener: tuple[str, socket.socket]) -> None:
    path, _ = listener
    assert not WatchdogPinger(ServiceNotifier(path), None).enabled
    assert not WatchdogPinger(ServiceNotifier(None), 1_000_000).enabled
    assert not WatchdogPinger(ServiceNotifier(None), 1_000_000).tick()


def test_settings_read_the_systemd_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from runner.config import Settings

    monkeypatch.setenv("NOTIFY_SOCKET", "@sd-notify")
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    settings = Settings.load(None, root=tmp_path)
    assert (settings.notify_socket, settings.watchdog_usec, settings.watchdog_pid) == ("@sd-notify", 3000000,
                                                                                        os.getpid())


def test_daemon_says_ready_once_serving_pings_and_says_stopping(listener: tuple[str, socket.socket],
                                                                tmp_path: Path) -> None:
    path, sock = listener
    server = start_server(tmp_path / "root", notify_socket=path, watchdog_usec=400_000)
    try:
        first = _messages(sock, "READY=1")
        assert first[0].startswith("READY=1") and server.url in first[0]
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/livez").status_code == 200  # READY=1 means the API serves
        pings = _messages(sock, "WATCHDOG=1") + _messages(sock, "WATCHDOG=1")
        assert sum(m == "WATCHDOG=1" for m in pings) >= 2
    finally:
        server.stop()
    rest = _messages(sock, "STOPPING=1")
    assert any(m.startswith("STOPPING=1") for m in rest)


def test_watchdog_meant_for_another_process_is_not_pinged(listener: tuple[str, socket.socket],
                                                          tmp_path: Path) -> None:
    path, sock = listener
    server = start_server(tmp_path / "root", notify_socket=path, watchdog_usec=200_000, watchdog_pid=os.getpid() + 1)
    try:
        assert _messages(sock, "READY=1")
        wait_until(lambda: server.daemon.url, 10)
        sock.settimeout(1.5)  # several intervals: a ping would have come
        with pytest.raises(TimeoutError):
            sock.recv(4096)
    finally:
        server.stop()
