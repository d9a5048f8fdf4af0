"""A local client that paused longer than the daemon keeps an idle connection open goes on working:
the daemon closed the connection (``http_keep_alive_s``), the client notices before its next request
and opens a new one, over TCP and over the Unix socket, without sending anything twice."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.client import LocalClient
from tests.api.support import RunningServer, start_server
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    uds = Path(f"/tmp/pv-test-ka-{os.getpid()}.sock")  # AF_UNIX paths are limited to ~107 bytes
    srv = start_server(tmp_path_factory.mktemp("keepalive") / "root", http_keep_alive_s=1, uds_path=uds)
    try:
        yield srv
    finally:
        srv.stop()


def _clients(server: RunningServer) -> list[LocalClient]:
    assert server.settings.uds_path is not None
    return [LocalClient(server.url, server.token), LocalClient(uds=str(server.settings.uds_path), token=server.token)]


@pytest.mark.parametrize("transport", [0, 1], ids=["tcp", "uds"])
def test_a_client_idle_past_the_keep_alive_reconnects_before_its_next_request(server: RunningServer,
                                                                              transport: int) -> None:
    with _clients(server)[transport] as client:
        slot = client.lease_slot((4, 4))
        assert client.connection.opened == 1
        wait_until(client.connection.dropped, 30.0, "the daemon to close the idle connection")
        # The next requests go out on a new connection and are answered; the lease made before the
        # pause is still the caller's.
        status, _headers, _body = client.request("GET", "/livez")
        assert status == 200
        slot.release()
        assert client.connection.opened == 2


def test_a_busy_client_keeps_its_connection(server: RunningServer) -> None:
    with LocalClient(server.url, server.token) as client:
        for _ in range(20):
            assert client.request("GET", "/livez")[0] == 200
            assert not client.connection.dropped()
        assert client.connection.opened == 1
