"""Oversized and deeply nested request bodies: refused while they stream in (413 / 422 with a code),
never buffered, never a 500, and the keep-alive connection stays usable afterwards.

The memory checks run the daemon as a real ``serve`` subprocess and read its peak RSS from /proc
(reset through ``clear_refs`` before each attack).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.api.support import RunningServer, ServeProcess, png_bytes, start_server

MiB = 1024 * 1024
IMAGE_CAP = 16 * MiB
JSON_CAP = 256 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("limits") / "root", max_image_bytes=IMAGE_CAP,
                       max_json_body_bytes=JSON_CAP, max_json_depth=32)
    yield srv
    srv.stop()


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    return dict(body)


def _local_port(response: httpx.Response) -> int:
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


def _still_usable(client: httpx.Client, before: httpx.Response) -> None:
    """The next request succeeds on the very connection that carried the refused one."""
    after = client.get("/livez")
    assert after.status_code == 200, after.text
    assert _local_port(after) == _local_port(before), "the keep-alive connection was dropped"


def _chunks(total: int, piece: bytes) -> Iterator[bytes]:
    """``total`` bytes in 1 MiB chunks, made on the fly (the test never holds the body either)."""
    block = (piece * (MiB // len(piece) + 1))[:MiB]
    sent = 0
    while sent < total:
        step = min(MiB, total - sent)
        yield block[:step]
        sent += step


def _multipart(fields: dict[str, str], file_head: bytes, file_bytes: int, boundary: str = "pvlimit") -> Iterator[bytes]:
    """A multipart /execute body whose 'image' part is ``file_head`` followed by trailing zero bytes."""
    for name, value in fields.items():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"cam.png\"\r\n"
           "Content-Type: image/png\r\n\r\n").encode()
    yield file_head
    yield from _chunks(file_bytes - len(file_head), b"\0")
    yield f"\r\n--{boundary}--\r\n".encode()


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- size caps ----------------------------------------------------------------------------------


def test_declared_oversized_json_body_is_413_before_reading(server: RunningServer) -> None:
    with server.client() as client:
        response = client.post("/algorithms/activate", content=_chunks(JSON_CAP + MiB, b" "),
                               headers={"content-type": "application/json",
                                        "content-length": str(JSON_CAP + MiB)})
        problem = _problem(response, 413, "2014")
        assert problem["details"]["setting"] == "max_json_body_bytes"
        assert problem["details"]["limit_bytes"] == JSON_CAP
        _still_usable(client, response)


def test_chunked_oversized_json_body_is_cut_while_streaming(server: RunningServer) -> None:
    with server.client() as client:
        # A generator without a length goes out chunked: the cap must hold without Content-Length.
        response = client.post("/algorithms/activate", content=_chunks(8 * MiB, b"[1,"),
                               headers={"content-type": "application/json"})
        _problem(response, 413, "2014")
        _still_usable(client, response)


def test_image_over_max_image_bytes_is_413_naming_the_setting(server: RunningServer) -> None:
    with server.client() as client:
        body = _multipart({"pid": "P001"}, png_bytes(), IMAGE_CAP + MiB)
        response = client.post("/execute", content=body,
                               headers={"content-type": "multipart/form-data; boundary=pvlimit"})
        problem = _problem(response, 413, "2014")
        assert problem["details"]["setting"] == "max_image_bytes"
        _still_usable(client, response)


def test_execute_body_over_two_images_is_cut_while_streaming(server: RunningServer) -> None:
    with server.client() as client:
        body = _multipart({"pid": "P001"}, png_bytes(), 3 * IMAGE_CAP)
        response = client.post("/execute", content=body,
                               headers={"content-type": "multipart/form-data; boundary=pvlimit"})
        _problem(response, 413, "2014")
        _still_usable(client, response)


def test_small_png_that_decodes_over_the_cap_is_413(server: RunningServer) -> None:
    # 3000 x 2000 RGB = 18 MB decoded from a file of a few kB: refused from the header, before decoding.
    with server.client() as client:
        response = client.post("/execute", data={"pid": "P001"},
                               files={"guide_image": ("g.png", png_bytes(size=(10, 10)), "image/png"),
                                      "image": ("big.png", png_bytes(size=(2000, 3000)), "image/png")})
        problem = _problem(response, 413, "2014")
        assert problem["details"]["setting"] == "max_image_bytes"
        assert problem["details"]["width"] == 3000 and problem["details"]["channels"] == 3
        _still_usable(client, response)


def test_urlencoded_execute_body_gets_the_small_cap(server: RunningServer) -> None:
    # Only multipart parts are spooled to disk; a url-encoded form would be parsed in memory.
    with server.client() as client:
        response = client.post("/execute", content=_chunks(JSON_CAP + MiB, b"a"),
                               headers={"content-type": "application/x-www-form-urlencoded"})
        problem = _problem(response, 413, "2014")
        assert problem["details"]["setting"] == "max_json_body_bytes"
        _still_usable(client, response)


def test_image_within_the_cap_is_still_decoded(server: RunningServer) -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros((64, 48, 3), dtype=np.uint8))
    with server.client() as client:
        response = client.post("/execute", data={"pid": "NOPE"}, files={"image": ("a.npy", buf.getvalue())})
    # The image passed every limit; what stops the call is the unknown pid.
    assert response.status_code in (404, 422), response.text
    assert response.json()["code"] not in ("2014", "1002")


# --- nesting depth ------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/algorithms/install", "/algorithms/validate", "/algorithms/activate"])
def test_deeply_nested_json_body_is_422_not_500(server: RunningServer, route: str) -> None:
    with server.client() as client:
        response = client.post(route, content=b"[" * 100_000, headers={"content-type": "application/json"})
        problem = _problem(response, 422, "2013")
        assert problem["details"]["max_json_depth"] == 32
        _still_usable(client, response)


def test_deep_user_params_on_execute_is_422_not_500(server: RunningServer) -> None:
    deep = "{" + '"a":{' * 2999 + "}" * 3000
    with server.client() as client:
        response = client.post("/execute", data={"pid": "P001", "user_params": deep},
                               files={"image": ("a.png", png_bytes(), "image/png")})
        problem = _problem(response, 422, "1003")
        assert problem["details"]["field"] == "user_params"
        assert "max_json_depth" in problem["detail"]
        _still_usable(client, response)


def test_json_within_the_depth_limit_reaches_validation(server: RunningServer) -> None:
    body = {"name": "x", "version": "1", "pids": [json.loads(_nested(20))]}
    with server.client() as client:
        response = client.post("/algorithms/activate", json=body)
    problem = _problem(response, 422, "2013")
    assert "max_json_depth" not in problem["details"], problem  # refused by the model, not the depth guard


# --- memory: the attacks of the finding, against a real serve process ------------------------------


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc status")


@pytest.fixture(scope="module")
def serve_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, httpx.Client]]:
    root = tmp_path_factory.mktemp("limits-serve") / "root"
    proc = ServeProcess(root, "--port", "0")
    try:
        url = proc.url()
    except AssertionError:
        proc.kill()
        raise
    token = (root / ".token").read_text().strip()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as client:
        yield proc, client
    proc.stop()


def _growth_during(pid: int, attack: Any) -> tuple[int, httpx.Response]:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets the peak to the current RSS
    except OSError as exc:
        pytest.skip(f"cannot reset the peak RSS of the daemon ({exc})")
    before = _rss(pid)
    response = attack()
    return _peak_rss(pid) - before, response


def test_300_mb_json_body_does_not_grow_the_daemon(serve_process: tuple[ServeProcess, httpx.Client]) -> None:
    proc, client = serve_process
    size = 300 * MiB
    growth, response = _growth_during(proc.proc.pid, lambda: client.post(
        "/algorithms/activate", content=_chunks(size, b"[1,"), headers={"content-type": "application/json"}))
    _problem(response, 413, "2014")
    assert growth < 2 * 64 * MiB, f"the daemon grew by {growth / MiB:.0f} MiB for a refused 300 MiB body"
    _still_usable(client, response)


def test_png_with_300_mb_trailing_bytes_is_refused_without_buffering(
        serve_process: tuple[ServeProcess, httpx.Client]) -> None:
    proc, client = serve_process
    body = _multipart({"pid": "P001"}, png_bytes(), 300 * MiB)
    growth, response = _growth_during(proc.proc.pid, lambda: client.post(
        "/execute", content=body, headers={"content-type": "multipart/form-data; boundary=pvlimit"}))
    _problem(response, 413, "2014")
    # Default max_image_bytes is 64 MiB: no request may grow the daemon by two of those.
    assert growth < 2 * 64 * MiB, f"the daemon grew by {growth / MiB:.0f} MiB for a refused image"
    _still_usable(client, response)


def test_image_at_the_cap_grows_the_daemon_by_at_most_two_images(
        serve_process: tuple[ServeProcess, httpx.Client]) -> None:
    proc, client = serve_process
    buf = io.BytesIO()
    np.save(buf, np.full((4000, 5000, 3), 7, dtype=np.uint8))  # 60 MB, under the default 64 MiB
    body = buf.getvalue()
    growth, response = _growth_during(proc.proc.pid, lambda: client.post(
        "/execute", data={"pid": "NOPE"}, files={"image": ("big.npy", body, "application/octet-stream")}))
    assert response.status_code in (404, 422), response.text  # decoded, then the unknown pid stops it
    assert response.json()["code"] not in ("2014", "1002")
    assert growth < 2 * 64 * MiB, f"the daemon grew by {growth / MiB:.0f} MiB for one 60 MB image"
