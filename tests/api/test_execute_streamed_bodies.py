"""POST /execute reads its body as it streams in: a multipart .npy, a raw .npy body and raw pixels
(shape in X-Image-Shape) all reach the worker with the same pixels; caps still answer 413; every
answer says where its time went (Server-Timing header and timing_ms, consistent with each other)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pytest

from tests.api.support import RunningServer, install_and_activate, make_zip, npy_bytes, start_server

IMAGE_CAP = 4 * 1024 * 1024


@dataclass
class Served:
    server: RunningServer
    client: httpx.Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("streamed")
    srv = start_server(base / "root", max_image_bytes=IMAGE_CAP)
    client = srv.client()
    try:
        install_and_activate(client, make_zip(base / "pkgs"))
        yield Served(srv, client)
    finally:
        client.close()
        srv.stop()


def _image(value: int, shape: tuple[int, ...] = (60, 80, 3)) -> np.ndarray:
    return np.full(shape, value, dtype=np.uint8)


def _debug(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "OK", body
    return dict(body["data"]["debug"])


def test_multipart_npy_reaches_the_worker(served: Served) -> None:
    response = served.client.post("/execute", data={"pid": "P001"},
                                  files={"image": ("a.npy", npy_bytes(_image(42)), "application/octet-stream")})
    debug = _debug(response)
    assert debug["shape"] == [60, 80, 3] and debug["mean"] == 42.0


def test_raw_npy_body_with_fields_in_the_query(served: Served) -> None:
    response = served.client.post("/execute", params={"pid": "P001", "step_index": "1"},
                                  content=npy_bytes(_image(17, (30, 40))),
                                  headers={"content-type": "application/x-npy"})
    debug = _debug(response)
    assert debug["shape"][:2] == [30, 40] and debug["mean"] == 17.0  # the SDK may expand mono to 3 channels


def test_raw_pixels_with_the_shape_in_a_header(served: Served) -> None:
    arr = _image(9, (20, 30, 3))
    response = served.client.post("/execute", params={"pid": "P001"}, content=arr.tobytes(),
                                  headers={"content-type": "application/octet-stream", "X-Image-Shape": "20,30,3"})
    debug = _debug(response)
    assert debug["shape"] == [20, 30, 3] and debug["mean"] == 9.0


def test_chunked_npy_split_inside_its_header_is_reassembled(served: Served) -> None:
    data = npy_bytes(_image(77, (50, 50, 3)))

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), 7):  # 7-byte chunks: the header arrives in many pieces
            yield data[start:start + 7]

    response = served.client.post("/execute", params={"pid": "P001"}, content=pieces(),
                                  headers={"content-type": "application/x-npy"})
    assert _debug(response)["mean"] == 77.0


def test_consecutive_uploads_do_not_see_each_others_pixels(served: Served) -> None:
    # Arrays are reused between calls: each call must still see exactly its own pixels.
    for value in (1, 200, 3):
        response = served.client.post("/execute", params={"pid": "P001"}, content=npy_bytes(_image(value)),
                                      headers={"content-type": "application/x-npy"})
        assert _debug(response)["mean"] == float(value)


def test_raw_pixels_without_shape_header_is_400_with_a_code(served: Served) -> None:
    response = served.client.post("/execute", params={"pid": "P001"}, content=b"\0" * 100,
                                  headers={"content-type": "application/octet-stream"})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "2013" and "X-Image-Shape" in response.json()["detail"]


def test_raw_pixels_longer_than_the_shape_is_refused(served: Served) -> None:
    response = served.client.post("/execute", params={"pid": "P001"}, content=b"\0" * 101,
                                  headers={"content-type": "application/octet-stream", "X-Image-Shape": "10,10"})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "1002"


def test_truncated_npy_is_1002(served: Served) -> None:
    data = npy_bytes(_image(5))
    response = served.client.post("/execute", params={"pid": "P001"}, content=data[:-10],
                                  headers={"content-type": "application/x-npy"})
    assert response.json()["code"] == "1002", response.text
    assert "complete" in response.json()["detail"]


def test_raw_body_over_max_image_bytes_is_413(served: Served) -> None:
    data = npy_bytes(_image(1, (1400, 1100, 3)))  # 4.6 MB > 4 MiB
    response = served.client.post("/execute", params={"pid": "P001"}, content=data,
                                  headers={"content-type": "application/x-npy"})
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["code"] == "2014" and body["details"]["setting"] == "max_image_bytes"


def test_chunked_raw_body_over_max_image_bytes_is_413(served: Served) -> None:
    def pieces() -> Iterator[bytes]:
        header = npy_bytes(_image(1, (2000, 1000, 3)))[:128]
        yield header
        for _ in range(6):
            yield b"\0" * (1024 * 1024)

    response = served.client.post("/execute", params={"pid": "P001"}, content=pieces(),
                                  headers={"content-type": "application/x-npy"})
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "2014"


def test_missing_pid_in_a_raw_body_is_a_validation_problem(served: Served) -> None:
    response = served.client.post("/execute", content=npy_bytes(_image(1)),
                                  headers={"content-type": "application/x-npy"})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "2013" and "pid" in response.json()["detail"]


def test_server_timing_matches_the_json_figures(served: Served) -> None:
    response = served.client.post("/execute", data={"pid": "P001"},
                                  files={"image": ("a.npy", npy_bytes(_image(8)), "application/octet-stream")})
    assert response.status_code == 200, response.text
    timing = response.json()["timing_ms"]
    header = response.headers["Server-Timing"]
    parsed = {}
    for item in header.split(","):
        name, dur = item.strip().split(";dur=")
        parsed[name] = float(dur)
    phases = ("receive", "decode", "queue", "worker", "checks", "dispatch")
    assert set(parsed) == set(timing) == {*phases, "total"}
    for name, value in timing.items():
        assert abs(parsed[name] - value) < 0.01, (name, parsed[name], value)
        assert value >= 0
    # The worker round trip is real work (frames both ways, the algorithm): never zero.
    assert timing["worker"] > 0
    assert sum(timing[name] for name in phases) <= timing["total"] + 0.01
    assert "phases_ms" not in response.json()


def test_phase_histograms_are_exported(served: Served) -> None:
    served.client.post("/execute", params={"pid": "P001"}, content=npy_bytes(_image(8)),
                       headers={"content-type": "application/x-npy"})
    text = served.client.get("/metrics").text
    assert 'procvision_execute_phase_seconds_bucket{phase="receive"' in text
    for phase in ("queue", "worker", "checks", "dispatch"):
        assert f'procvision_execute_phase_seconds_count{{phase="{phase}"}}' in text
