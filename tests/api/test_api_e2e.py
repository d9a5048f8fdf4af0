"""End to end through a real daemon: install a real package over HTTP, activate, execute real images,
logs (tail and SSE), metrics, and how worker failures map to HTTP statuses."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from tests.api.support import NAME, RunningServer, install, make_zip, png_bytes, start_server
from tests.support.waiting import wait_until


@dataclass
class Served:
    server: RunningServer
    client: httpx.Client
    install_op: dict[str, Any]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("e2e")
    zip_path = make_zip(base / "pkgs")
    srv = start_server(base / "root")
    client = srv.client()
    try:
        op = install(client, zip_path, **{"Idempotency-Key": "e2e-install-1"})
        assert op["state"] == "succeeded", op
        response = client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0", "pids": ["P001"]})
        assert response.status_code == 200, response.text
        yield Served(srv, client, op)
    finally:
        client.close()
        srv.stop()


def _execute(client: httpx.Client, image: bytes = b"", name: str = "a.png", **fields: Any) -> httpx.Response:
    data = {"pid": "P001", **{k: (json.dumps(v) if isinstance(v, dict | list) else str(v))
                              for k, v in fields.items()}}
    return client.post("/execute", data=data, files={"image": (name, image or png_bytes(), "image/png")})


def test_install_operation_reports_every_stage(served: Served) -> None:
    op = served.install_op
    assert op["stages"] == ["checking", "extracting", "creating venv", "installing", "smoke test", "publishing"]
    assert op["result"]["name"] == NAME and op["result"]["version"] == "1.0.0"
    assert op["result"]["idempotent"] is False
    assert op["error"] is None and op["request"]["sha256"]


def test_same_idempotency_key_returns_the_same_operation(served: Served, tmp_path: Any) -> None:
    zip_path = make_zip(tmp_path)
    with open(zip_path, "rb") as handle:
        response = served.client.post("/algorithms/install", headers={"Idempotency-Key": "e2e-install-1"},
                                      files={"file": (zip_path.name, handle, "application/zip")})
    assert response.status_code == 200
    assert response.json()["id"] == served.install_op["id"]
    assert response.headers["location"] == f"/operations/{served.install_op['id']}"


def test_reinstall_same_zip_is_idempotent(served: Served, tmp_path: Any) -> None:
    op = install(served.client, make_zip(tmp_path))
    assert op["state"] == "succeeded" and op["result"]["idempotent"] is True


def test_list_show_active(served: Served) -> None:
    client = served.client
    rows = client.get("/algorithms").json()
    assert [(r["name"], r["version"]) for r in rows] == [(NAME, "1.0.0")]
    assert client.get("/algorithms", params={"name": "other"}).json() == []
    state = rows[0]["state"]
    assert client.get("/algorithms", params={"state": state}).json() == rows
    assert client.get("/algorithms", params={"state": "failed"}).json() == []
    detail = client.get(f"/algorithms/{NAME}/1.0.0").json()
    assert detail["manifest"]["entry_point"] == "algo.main:Algorithm"
    assert detail["active_pids"] == ["P001"]
    assert detail["workers"]["state"] in ("running", "executing")
    assert detail["log_file"].endswith("worker.log")
    active = client.get("/algorithms/active").json()
    assert active["P001"]["name"] == NAME and active["P001"]["version"] == "1.0.0"


def test_execute_png(served: Served) -> None:
    response = _execute(served.client, png_bytes(100))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "OK" and body["data"]["result_status"] == "OK"
    assert body["data"]["debug"]["shape"] == [48, 64, 3]
    assert body["served_by"]["name"] == NAME and body["served_by"]["version"] == "1.0.0"
    assert isinstance(body["served_by"]["worker_pid"], int) and body["latency_ms"] >= 0
    ng = _execute(served.client, png_bytes(255)).json()
    assert ng["data"]["result_status"] == "NG" and ng["data"]["ng_reason"] == "too bright"


def test_execute_npy_and_session_from_pre_to_execute(served: Served) -> None:
    buf = io.BytesIO()
    np.save(buf, np.full((10, 12), 7, dtype=np.uint8))
    client = served.client
    pre = _execute(client, png_bytes(), phase="pre", session_id="s-1")
    assert pre.status_code == 200 and pre.json()["phase"] == "pre"
    body = _execute(client, buf.getvalue(), name="a.npy", session_id="s-1", end_session="true").json()
    assert body["status"] == "OK", body
    debug = body["data"]["debug"]
    assert debug["mean"] == 7.0 and debug["shape"][:2] == [10, 12] and debug["pre_seen"] is True


def test_execute_bad_requests(served: Served) -> None:
    client = served.client
    cases = [
        (_execute(client, b"not an image"), 422, "1002"),
        (_execute(client, user_params="{oops"), 422, "1003"),
        (_execute(client, user_params="[1]"), 422, "1003"),
        (_execute(client, phase="info"), 422, "2013"),
        (client.post("/execute", data={"pid": "P001"}), 422, "1002"),
        (client.post("/execute", files={"image": ("a.png", png_bytes(), "image/png")}), 422, "2013"),
        (_execute(client, step_index=0), 422, "2013"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert response.json()["code"] == code, response.text


def test_algorithm_error_is_a_200_with_status_error(served: Served) -> None:
    body = _execute(served.client, user_params={"fail": True}).json()
    assert body["status"] == "ERROR" and body["error_code"] == "1003"


def test_timeout_is_504_and_crash_is_502(served: Served) -> None:
    client = served.client
    slow = _execute(client, user_params={"sleep_s": 5}, timeout_ms=300)
    assert slow.status_code == 504, slow.text
    assert slow.json()["code"] == "1005" and slow.json()["details"]["result"]["served_by"]["name"] == NAME
    wait_until(lambda: client.get("/readyz").status_code == 200, what="the worker to be back after the timeout")
    crash = _execute(client, user_params={"crash": True})
    assert crash.status_code == 502, crash.text
    assert crash.json()["code"] == "1011"
    wait_until(lambda: client.get("/readyz").status_code == 200, what="the worker to restart after the crash")
    assert _execute(client).json()["status"] == "OK"


def test_logs_tail_and_stream(served: Served) -> None:
    client = served.client
    assert _execute(client, user_params={"say": "tail-marker-1"}).status_code == 200
    lines = wait_until(lambda: [ln for ln in client.get(f"/algorithms/{NAME}/1.0.0/logs", params={"tail": 50})
                              .json()["lines"] if "tail-marker-1" in ln], 30, "the marker in the log")
    assert lines
    assert client.get(f"/algorithms/{NAME}/1.0.0/logs", params={"tail": 0}).json()["lines"] == []

    seen: list[str] = []
    found = threading.Event()

    def follow() -> None:
        with httpx.Client(base_url=served.server.url, timeout=30,
                          headers={"Authorization": f"Bearer {served.server.token}"}) as sse, \
                sse.stream("GET", f"/algorithms/{NAME}/1.0.0/logs/stream", params={"tail": 1}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    if "sse-marker-2" in seen[-1]:
                        found.set()
                        return
                elif line == ": following":
                    seen.append(line)

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    wait_until(lambda: ": following" in seen, what="the stream to start following")
    assert _execute(client, user_params={"say": "sse-marker-2"}).status_code == 200
    assert found.wait(30), seen
    reader.join(10)


def test_metrics_text(served: Served) -> None:
    _execute(served.client)
    text = served.client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    body = text.text
    assert 'procvision_installs_total{outcome="succeeded",source="api"}' in body
    assert f'procvision_calls_total{{name="{NAME}",version="1.0.0",status="OK"}}' in body
    assert f'procvision_call_latency_seconds_bucket{{name="{NAME}",version="1.0.0",le="+Inf"}}' in body
    assert f'procvision_workers{{name="{NAME}",version="1.0.0",state="running"}}' in body
    assert "# TYPE procvision_call_latency_seconds histogram" in body


def test_validate_zip_and_installed(served: Served, tmp_path: Any) -> None:
    client = served.client
    zip_path = make_zip(tmp_path, version="3.0.0")
    with open(zip_path, "rb") as handle:
        report = client.post("/algorithms/validate", files={"file": (zip_path.name, handle, "application/zip")}).json()
    assert report["summary"]["status"] == "PASS", report
    assert report["summary"]["failed"] == 0 and report["checks"]
    by_path = client.post("/algorithms/validate", json={"path": str(zip_path)}).json()
    assert by_path["summary"] == report["summary"]
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK not really a zip")
    with open(bad, "rb") as handle:
        failed = client.post("/algorithms/validate", files={"file": ("bad.zip", handle, "application/zip")}).json()
    assert failed["summary"]["status"] == "FAIL" and failed["summary"]["failed"] >= 1
    stored = client.post("/algorithms/validate", json={"name": NAME, "version": "1.0.0"}).json()
    assert stored["summary"]["status"] == "PASS" and not stored["rerun"]
    assert {c["name"] for c in stored["checks"]} >= {"hello", "execute"}
    fresh = client.post("/algorithms/validate", json={"name": NAME, "version": "1.0.0", "rerun": True}).json()
    assert fresh["summary"]["status"] == "PASS" and fresh["rerun"]


def test_install_of_invalid_zip_fails_the_operation(served: Served, tmp_path: Any) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"this is not a zip file")
    op = install(served.client, bad)
    assert op["state"] == "failed"
    assert op["error"]["code"] == "2001" and op["error"]["status"] == 422
    with open(bad, "rb") as handle:
        response = served.client.post("/algorithms/install", content=handle.read(),
                                      headers={"content-type": "application/zip", "Idempotency-Key": "raw-1"})
    assert response.status_code == 202
    assert response.json()["request"]["size"] == bad.stat().st_size


def test_idempotency_key_reused_for_other_content_is_422(served: Served, tmp_path: Any) -> None:
    one, two = tmp_path / "one.zip", tmp_path / "two.zip"
    one.write_bytes(b"one")
    two.write_bytes(b"two")
    first = served.client.post("/algorithms/install", content=one.read_bytes(),
                               headers={"content-type": "application/zip", "Idempotency-Key": "k-2"})
    assert first.status_code == 202
    second = served.client.post("/algorithms/install", content=two.read_bytes(),
                                headers={"content-type": "application/zip", "Idempotency-Key": "k-2"})
    assert second.status_code == 422 and second.json()["code"] == "2013"


def test_activation_conflicts(served: Served) -> None:
    client = served.client
    response = client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0", "pids": ["ZZZ"]})
    assert response.status_code in (409, 422), response.text
    assert response.json()["code"] in ("2006", "1001", "2013")
    missing = client.post("/algorithms/activate", json={"name": NAME, "version": "0.0.1", "pids": ["P001"]})
    assert missing.status_code == 404 and missing.json()["code"] == "2009"
    busy = client.delete(f"/algorithms/{NAME}/1.0.0")
    assert busy.status_code == 409 and busy.json()["code"] == "2007"


def test_same_version_with_other_content_is_a_409_failure(served: Served, tmp_path: Any) -> None:
    from tests.support.packages import build_package, manifest_for

    manifest = manifest_for(name=NAME, version="1.0.0", pids=("P001", "P002"))
    other = build_package(tmp_path, manifest=manifest,
                          files={"algo/__init__.py": "# changed\n", "algo/main.py": "raise SystemExit(1)\n"})
    op = install(served.client, other)
    assert op["state"] == "failed"
    assert op["error"]["code"] == "2008" and op["error"]["status"] == 409, op["error"]
