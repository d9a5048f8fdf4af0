"""An uploaded image's pixels go from the socket straight into a pre-faulted shared-memory segment of
the worker that runs the call, which passes that segment on as it is (no second copy); whatever goes
wrong on the way (a client gone mid-body, too many bytes) gives the segment back for later calls.
Where the pixels landed is counted in ``procvision_execute_uploads_total{landed=...}``."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pytest

from runner.service import RunnerService
from runner.supervision.worker import Worker
from tests.api.support import NAME, RunningServer, install_and_activate, make_zip, npy_bytes, start_server
from tests.support.waiting import wait_until


@dataclass
class Served:
    server: RunningServer
    client: httpx.Client
    service: RunnerService

    def worker(self) -> Worker:
        pool = self.service.supervisor.get(NAME, "1.0.0")
        assert pool is not None
        return pool.workers[0]

    def landed(self) -> dict[str, int]:
        text = self.client.get("/metrics").text
        return {m.group(1): int(m.group(2))
                for m in re.finditer(r'procvision_execute_uploads_total\{landed="([a-z_]+)"\} (\d+)', text)}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("segments")
    services: list[RunnerService] = []
    srv = start_server(base / "root", before_serve=services.append, workers_per_version=1)
    client = srv.client()
    try:
        install_and_activate(client, make_zip(base / "pkgs"))
        yield Served(srv, client, services[0])
    finally:
        client.close()
        srv.stop()


def _gradient(shape: tuple[int, ...]) -> np.ndarray:
    return (np.arange(int(np.prod(shape))) % 251).astype(np.uint8).reshape(shape)


def _ok(response: httpx.Response, arr: np.ndarray) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "OK", body
    assert body["data"]["debug"]["mean"] == pytest.approx(float(arr.mean()))


def _landed_after(served: Served, send: object) -> dict[str, int]:
    before = served.landed()
    assert callable(send)
    send()
    after = served.landed()
    return {key: after.get(key, 0) - before.get(key, 0) for key in set(after) | set(before)}


@pytest.mark.parametrize("kind", ["raw npy", "raw pixels", "multipart, pid first"])
def test_uploaded_pixels_are_passed_to_the_worker_in_the_segment_they_were_received_into(
        served: Served, kind: str) -> None:
    arr = _gradient((48, 64, 3))

    def send() -> None:
        if kind == "raw npy":
            response = served.client.post("/execute", params={"pid": "P001"}, content=npy_bytes(arr),
                                          headers={"content-type": "application/x-npy"})
        elif kind == "raw pixels":
            response = served.client.post("/execute", params={"pid": "P001"}, content=arr.tobytes(),
                                          headers={"content-type": "application/octet-stream",
                                                   "X-Image-Shape": "48,64,3"})
        else:
            response = served.client.post("/execute", data={"pid": "P001"},
                                          files={"image": ("a.npy", npy_bytes(arr), "application/octet-stream")})
        _ok(response, arr)

    # The first calls of a shape may find no spare segment ready yet (spares are made like the last
    # image): those land in a pooled array. Once spares exist, every upload goes into one.
    wait_until(lambda: _landed_after(served, send).get("worker_segment") == 1, what="an upload into a segment")
    assert served.worker().reserved_images == 0


def test_grey_images_go_into_a_one_channel_segment(served: Served) -> None:
    arr = _gradient((30, 40))

    def send() -> None:
        response = served.client.post("/execute", params={"pid": "P001"}, content=npy_bytes(arr),
                                      headers={"content-type": "application/x-npy"})
        _ok(response, arr)

    wait_until(lambda: _landed_after(served, send).get("worker_segment") == 1, what="a grey upload into a segment")


def test_an_image_sent_before_the_pid_is_received_into_a_buffer(served: Served) -> None:
    arr = _gradient((20, 30, 3))
    boundary = "pvtestboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.npy\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + npy_bytes(arr) + (
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"pid\"\r\n\r\nP001\r\n"
            f"--{boundary}--\r\n").encode()

    def send() -> None:
        response = served.client.post("/execute", content=body,
                                      headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        _ok(response, arr)

    assert _landed_after(served, send).get("buffer") == 1


def test_reordered_channels_are_copied_out_of_the_segment(served: Served) -> None:
    arr = _gradient((24, 32, 3))

    def send() -> None:
        response = served.client.post("/execute", params={"pid": "P001", "input_order": "BGR"}, content=npy_bytes(arr),
                                      headers={"content-type": "application/x-npy"})
        _ok(response, arr)

    landed = wait_until(lambda: (lambda d: d if d.get("buffer", 0) == 0 else None)(_landed_after(served, send)),
                        what="an upload received into a segment")
    assert landed.get("copied_from_segment") == 1 and landed.get("worker_segment", 0) == 0
    assert served.worker().reserved_images == 0


def _shape_is_reserved(served: Served) -> bool:
    return served.worker().reserved_images == 1


def test_a_client_gone_mid_body_gives_the_segment_back(served: Served) -> None:
    arr = _gradient((64, 80, 3))
    payload = arr.tobytes()
    url = httpx.URL(served.server.url)
    token = served.server.token
    head = (f"POST /execute?pid=P001 HTTP/1.1\r\nHost: {url.host}\r\nContent-Type: application/octet-stream\r\n"
            f"X-Image-Shape: 64,80,3\r\nContent-Length: {len(payload)}\r\n"
            + (f"Authorization: Bearer {token}\r\n" if token else "") + "\r\n").encode()
    # Warm the pool up so that the abandoned upload surely gets a segment.
    wait_until(lambda: _landed_after(served, lambda: _ok(served.client.post(
        "/execute", params={"pid": "P001"}, content=payload,
        headers={"content-type": "application/octet-stream", "X-Image-Shape": "64,80,3"}), arr)
    ).get("worker_segment") == 1, what="a warm segment pool")
    with socket.create_connection((url.host, url.port), timeout=60) as sock:
        sock.sendall(head + payload[: len(payload) // 2])
        wait_until(lambda: _shape_is_reserved(served), what="the upload to hold a reserved segment")
    wait_until(lambda: served.worker().reserved_images == 0, what="the reservation to be given back")

    def send() -> None:
        _ok(served.client.post("/execute", params={"pid": "P001"}, content=payload,
                               headers={"content-type": "application/octet-stream", "X-Image-Shape": "64,80,3"}),
            arr)

    assert _landed_after(served, send).get("worker_segment") == 1


def test_more_bytes_than_the_shape_is_refused_and_the_segment_given_back(served: Served) -> None:
    arr = _gradient((16, 16, 3))
    response = served.client.post("/execute", params={"pid": "P001"}, content=arr.tobytes() + b"extra",
                                  headers={"content-type": "application/octet-stream", "X-Image-Shape": "16,16,3"})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "1002"
    assert served.worker().reserved_images == 0


def test_a_shape_over_the_image_cap_is_refused_before_any_segment_is_reserved(served: Served) -> None:
    cap = served.server.settings.max_image_bytes
    side = int((cap // 3) ** 0.5) + 8
    response = served.client.post("/execute", params={"pid": "P001"}, content=b"\x00" * 64,
                                  headers={"content-type": "application/octet-stream",
                                           "X-Image-Shape": f"{side},{side},3"})
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "2014"
    assert served.worker().reserved_images == 0
