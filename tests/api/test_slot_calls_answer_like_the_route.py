"""Frame-slot calls are served by a lean path (``api/slot_calls.py``) that answers exactly as the
``/execute`` route would: the token is checked before anything else, a body, bad fields, a wrong key
and an unknown slot get the same problem documents, and a good call the same result and timing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from runner.client import LocalClient
from tests.api.support import RunningServer, install_and_activate, make_zip, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("slotcalls")
    srv = start_server(base / "root")
    client = srv.client()
    try:
        install_and_activate(client, make_zip(base / "pkgs"))
        yield srv
    finally:
        client.close()
        srv.stop()


@pytest.fixture
def slot(server: RunningServer) -> Iterator[tuple[str, str]]:
    with LocalClient(server.url, server.token) as client, client.lease_slot((12, 16, 3)) as leased:
        leased.frame[...] = 77
        yield leased.slot_id, leased.key


def _call(server: RunningServer, slot: tuple[str, str], token: str | None = "auto", **params: str) -> httpx.Response:
    with server.client(token=token) as client:
        return client.post("/execute", params={"slot": slot[0], "pid": "P001", **params},
                           headers={"X-Slot-Key": slot[1]})


def test_a_good_call_answers_with_the_result_and_its_timing(server: RunningServer, slot: tuple[str, str]) -> None:
    response = _call(server, slot)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "OK" and body["data"]["debug"]["mean"] == 77.0
    assert set(body["timing_ms"]) >= {"receive", "decode", "queue", "worker", "checks", "dispatch", "total"}
    assert "worker;dur=" in response.headers["Server-Timing"]


@pytest.mark.parametrize("token", [None, "not-the-token"])
def test_without_the_token_nothing_runs(server: RunningServer, slot: tuple[str, str], token: str | None) -> None:
    if server.token is None:
        pytest.skip("auth is disabled in this configuration")
    response = _call(server, slot, token=token)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "2015"
    assert response.headers.get("WWW-Authenticate") == "Bearer"


def test_a_body_on_a_slot_call_is_refused(server: RunningServer, slot: tuple[str, str]) -> None:
    with server.client() as client:
        response = client.post("/execute", params={"slot": slot[0], "pid": "P001"}, content=b"pixels",
                               headers={"X-Slot-Key": slot[1], "content-type": "application/octet-stream",
                                        "X-Image-Shape": "1,6"})
    assert response.status_code == 422, response.text
    assert response.json()["name"] == "slot_invalid"


def test_bad_fields_are_a_validation_problem(server: RunningServer, slot: tuple[str, str]) -> None:
    response = _call(server, slot, step_index="0")
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "2013" and "step_index" in response.json()["detail"]


def test_a_wrong_key_and_an_unknown_slot_are_refused(server: RunningServer, slot: tuple[str, str]) -> None:
    wrong = _call(server, (slot[0], "wrong-key"))
    assert (wrong.status_code, wrong.json()["code"]) == (403, "2051"), wrong.text
    unknown = _call(server, ("pvslot-" + "0" * 32, slot[1]))
    assert (unknown.status_code, unknown.json()["code"]) == (404, "2050"), unknown.text


def test_an_unbound_pid_is_404(server: RunningServer, slot: tuple[str, str]) -> None:
    response = _call(server, slot, pid="P999")
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "2009"
