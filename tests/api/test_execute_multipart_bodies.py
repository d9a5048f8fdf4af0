"""POST /execute reads multipart bodies however they are chunked on the wire: an image whose
delimiters arrive split across chunks reaches the worker intact, preamble and epilogue are ignored,
and a body that breaks the multipart grammar (no closing delimiter, header lines without CRLF,
oversized part headers, too many parts, an .npy part shorter than its header says) is 422 / 2013,
with the daemon still answering the next call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pytest

from runner.api.streaming.multipart_reader import MAX_HEADER_BYTES, MAX_PARTS
from tests.api.support import RunningServer, install_and_activate, make_zip, npy_bytes, start_server

BOUNDARY = "pvMultipartBound"
CONTENT_TYPE = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


@dataclass
class Served:
    server: RunningServer
    client: httpx.Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("multipart")
    srv = start_server(base / "root")
    client = srv.client()
    try:
        install_and_activate(client, make_zip(base / "pkgs"))
        yield Served(srv, client)
    finally:
        client.close()
        srv.stop()


def _part(name: str, data: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"


def _closing() -> bytes:
    return f"--{BOUNDARY}--\r\n".encode()


def _image(value: int) -> np.ndarray:
    return np.full((40, 50, 3), value, dtype=np.uint8)


def _mean(response: httpx.Response) -> float:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "OK", body
    return float(body["data"]["debug"]["mean"])


def _refused(response: httpx.Response, says: str) -> None:
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "2013" and says in problem["detail"], problem


def _still_answers(served: Served) -> None:
    body = _part("pid", b"P001") + _part("image", npy_bytes(_image(3)), "a.npy") + _closing()
    assert _mean(served.client.post("/execute", content=body, headers=CONTENT_TYPE)) == 3.0


def test_delimiters_split_across_chunks_reach_the_worker_intact(served: Served) -> None:
    body = _part("pid", b"P001") + _part("image", npy_bytes(_image(99)), "a.npy") + _closing()
    delimiters = [at for at in range(len(body)) if body.startswith(b"\r\n--" + BOUNDARY.encode(), at)]
    for at in delimiters:
        for split in (1, 3, 9):  # a cut inside each delimiter on the wire
            def pieces(cut: int = at + split) -> Iterator[bytes]:
                yield body[:cut]
                yield body[cut:]

            assert _mean(served.client.post("/execute", content=pieces(), headers=CONTENT_TYPE)) == 99.0


def test_preamble_and_epilogue_are_ignored(served: Served) -> None:
    body = (b"preamble a client may send\r\n" + _part("pid", b"P001") + _part("image", npy_bytes(_image(7)), "a.npy")
            + _closing() + b"epilogue, ignored")
    assert _mean(served.client.post("/execute", content=body, headers=CONTENT_TYPE)) == 7.0


def test_a_body_without_its_closing_delimiter_is_refused(served: Served) -> None:
    body = _part("pid", b"P001") + _part("image", npy_bytes(_image(5)), "a.npy")
    _refused(served.client.post("/execute", content=body[:-2], headers=CONTENT_TYPE), "closing boundary")
    _still_answers(served)


def test_an_npy_part_shorter_than_its_header_says_is_refused(served: Served) -> None:
    body = _part("pid", b"P001") + _part("image", npy_bytes(_image(5))[:-100], "a.npy") + _closing()
    _refused(served.client.post("/execute", content=body, headers=CONTENT_TYPE), "is the file complete?")
    _still_answers(served)


def test_header_lines_without_crlf_are_refused(served: Served) -> None:
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"pid\"\nX-Other: 1\r\n\r\nP001\r\n".encode()
            + _closing())
    _refused(served.client.post("/execute", content=body, headers=CONTENT_TYPE), "ended by CRLF")
    _still_answers(served)


def test_part_headers_over_the_cap_are_refused(served: Served) -> None:
    filler = b"X-Filler: " + b"f" * (MAX_HEADER_BYTES + 10) + b"\r\n"
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"pid\"\r\n".encode() + filler + b"\r\nP001\r\n"
            + _closing())
    _refused(served.client.post("/execute", content=body, headers=CONTENT_TYPE), "part headers longer than")
    _still_answers(served)


def test_more_parts_than_the_cap_are_refused(served: Served) -> None:
    body = b"".join(_part(f"extra{i}", b"") for i in range(MAX_PARTS + 1)) + _closing()
    _refused(served.client.post("/execute", content=body, headers=CONTENT_TYPE), f"more than {MAX_PARTS} parts")
    _still_answers(served)


def test_other_file_parts_are_dropped_and_fields_after_them_kept(served: Served) -> None:
    body = (_part("attachment", b"\0" * 100_000, "other.bin") + _part("pid", b"P001")
            + _part("image", npy_bytes(_image(11)), "a.npy") + _closing())
    assert _mean(served.client.post("/execute", content=body, headers=CONTENT_TYPE)) == 11.0
