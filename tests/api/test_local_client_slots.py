"""The zero-copy local path through a real daemon: a client leases a frame slot, writes the frame
into it itself and calls /execute naming it (no image bytes in the request), over TCP and over the
daemon's Unix socket (--uds). A foreign key, an unknown slot and a full table answer with codes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.client import LocalClient, LocalClientError
from tests.api.support import NAME, RunningServer, ServeProcess, install, make_zip, start_server

#: Slots a test leased and never released: the daemon's stop must remove their files.
LEFT_LEASED: list[str] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("slots")
    # A short folder: AF_UNIX paths are limited to ~107 bytes.
    uds = Path(f"/tmp/pv-test-{os.getpid()}.sock")
    srv = start_server(base / "root", frame_slots_max=2, uds_path=uds)
    try:
        with srv.client() as client:
            assert install(client, make_zip(base / "pkgs"))["state"] == "succeeded"
            response = client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0", "pids": ["P001"]})
            assert response.status_code == 200, response.text
        yield srv
    finally:
        srv.stop()
    assert not uds.exists(), "the Unix socket file outlived the daemon"
    # Filled by the test that leaves a slot leased, when it ran on this xdist worker (module fixtures
    # are per worker): what it left must be gone with the daemon.
    assert not any(Path(p).exists() for p in LEFT_LEASED), "a slot's file outlived the daemon"


def _tcp(server: RunningServer) -> LocalClient:
    return LocalClient(server.url, server.token)


def test_frame_written_into_the_slot_reaches_the_worker(server: RunningServer) -> None:
    with _tcp(server) as client, client.lease_slot((40, 60, 3)) as slot:
        for value in (10, 250, 33):
            slot.frame[...] = value
            result = slot.execute("P001", step_index=1)
            assert result["status"] == "OK", result
            assert result["data"]["debug"]["mean"] == float(value)
            assert "worker;dur=" in slot.server_timing


def test_the_api_on_the_unix_socket(server: RunningServer) -> None:
    assert server.settings.uds_path is not None
    assert (server.settings.uds_path.stat().st_mode & 0o777) == 0o600
    with LocalClient(uds=str(server.settings.uds_path), token=server.token) as client, \
            client.lease_slot((8, 8)) as slot:
        slot.frame[...] = 5
        assert slot.execute("P001")["data"]["debug"]["mean"] == 5.0


def test_another_caller_cannot_use_or_release_a_slot(server: RunningServer) -> None:
    with _tcp(server) as owner, _tcp(server) as other, owner.lease_slot((8, 8)) as slot:
        with pytest.raises(LocalClientError) as used:
            other.request("POST", f"/execute?pid=P001&slot={slot.slot_id}", None, {"X-Slot-Key": "guess"})
        assert used.value.status == 403 and used.value.code == "2051"
        with pytest.raises(LocalClientError) as released:
            other.request("DELETE", f"/fastpath/slots/{slot.slot_id}")
        assert released.value.status == 403 and released.value.code == "2051"


def test_unknown_slot_is_404_with_a_code(server: RunningServer) -> None:
    with _tcp(server) as client, pytest.raises(LocalClientError) as err:
        client.request("POST", "/execute?pid=P001&slot=pvslot-0000", None, {"X-Slot-Key": "x"})
    assert err.value.status == 404 and err.value.code == "2050"


def test_slots_are_bounded_and_come_back_when_released(server: RunningServer) -> None:
    with _tcp(server) as client:
        first, second = client.lease_slot((4, 4)), client.lease_slot((4, 4))
        with pytest.raises(LocalClientError) as full:
            client.lease_slot((4, 4))
        assert full.value.status == 503 and full.value.code == "2052"
        first.release()
        second.release()
        client.lease_slot((4, 4)).release()


def test_a_slot_call_with_a_body_is_refused(server: RunningServer) -> None:
    with _tcp(server) as client, client.lease_slot((4, 4)) as slot:
        with pytest.raises(LocalClientError) as err:
            client.request("POST", f"/execute?pid=P001&slot={slot.slot_id}", b"\x93NUMPY",
                           {"X-Slot-Key": slot.key, "Content-Type": "application/x-npy"})
        assert err.value.status == 422 and err.value.code == "2054"


def test_a_slot_left_leased_is_freed_when_the_daemon_stops(server: RunningServer) -> None:
    client = _tcp(server)
    slot = client.lease_slot((4, 4))
    assert Path(slot.path).exists()
    LEFT_LEASED.append(slot.path)  # checked after the module's daemon stopped
    client.close()


def test_serve_uds_flag_serves_the_api_on_a_private_socket(tmp_path: Path) -> None:
    uds = Path(f"/tmp/pv-test-cli-{os.getpid()}.sock")
    proc = ServeProcess(tmp_path / "root", "--port", "0", "--uds", str(uds))
    try:
        proc.url()
        assert (uds.stat().st_mode & 0o777) == 0o600
        token = (tmp_path / "root" / ".token").read_text().strip()
        with LocalClient(uds=str(uds), token=token) as client:
            status, _headers, body = client.request("GET", "/livez")
            assert status == 200, body
    finally:
        code = proc.stop()
        assert code == 0, f"serve exited with {code}; its last stderr lines: {proc.stderr[-30:]}"
    assert not uds.exists()
