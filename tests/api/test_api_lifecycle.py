"""Version lifecycle over HTTP: readyz transitions, stop/start/restart, switch, rollback, deactivate,
uninstall (refused while active, forced), and the upload size limit."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.api.support import NAME, install, make_zip, png_bytes, start_server
from tests.support.waiting import wait_until


def _ready(client: httpx.Client) -> httpx.Response:
    return client.get("/readyz")


def _served_version(client: httpx.Client, pid: str = "P001") -> str:
    response = client.post("/execute", data={"pid": pid}, files={"image": ("a.png", png_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    return str(response.json()["served_by"]["version"])


def test_lifecycle_and_readiness(tmp_path: Path) -> None:
    v1, v2 = make_zip(tmp_path / "p1", "1.0.0"), make_zip(tmp_path / "p2", "2.0.0")
    srv = start_server(tmp_path / "root")
    try:
        with srv.client() as client:
            assert _ready(client).json() == {"ready": True, "reasons": []}  # nothing active yet
            assert install(client, v1)["state"] == "succeeded"
            assert install(client, v2)["state"] == "succeeded"
            activated = client.post("/algorithms/activate", json={"name": NAME, "version": "1.0.0",
                                                                  "pids": ["P001", "P002"]})
            assert activated.status_code == 200, activated.text
            assert set(activated.json()["active"]) == {"P001", "P002"}
            assert _ready(client).status_code == 200
            assert _served_version(client) == "1.0.0"

            stopped = client.post(f"/algorithms/{NAME}/1.0.0/stop")
            assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
            not_ready = _ready(client)
            assert not_ready.status_code == 503
            assert any(f"{NAME} 1.0.0" in reason for reason in not_ready.json()["reasons"])
            call = client.post("/execute", data={"pid": "P001"}, files={"image": ("a.png", png_bytes(), "image/png")})
            assert call.status_code == 503 and call.json()["code"] == "1016", call.text

            started = client.post(f"/algorithms/{NAME}/1.0.0/start")
            assert started.status_code == 200, started.text
            wait_until(lambda: _ready(client).status_code == 200, what="readiness after start")
            restarted = client.post(f"/algorithms/{NAME}/1.0.0/restart")
            assert restarted.status_code == 200, restarted.text
            wait_until(lambda: _ready(client).status_code == 200, what="readiness after restart")

            switched = client.post("/algorithms/switch", json={"name": NAME, "version": "2.0.0", "pids": ["P001"]})
            assert switched.status_code == 200, switched.text
            assert switched.json()["active"]["P001"]["version"] == "2.0.0"
            assert switched.json()["active"]["P002"]["version"] == "1.0.0"
            assert _served_version(client, "P001") == "2.0.0"

            rolled = client.post("/algorithms/rollback", json={"pids": ["P001"]})
            assert rolled.status_code == 200, rolled.text
            assert rolled.json()["active"]["P001"]["version"] == "1.0.0"
            assert _served_version(client, "P001") == "1.0.0"

            refused = client.delete(f"/algorithms/{NAME}/1.0.0")
            assert refused.status_code == 409 and refused.json()["code"] == "2007"
            deactivated = client.post("/algorithms/deactivate", json={"pids": ["P002"]})
            assert deactivated.status_code == 200 and set(deactivated.json()["active"]) == {"P001"}

            forced = client.delete(f"/algorithms/{NAME}/1.0.0", params={"force": "true"})
            assert forced.status_code == 200, forced.text
            assert client.get(f"/algorithms/{NAME}/1.0.0").status_code == 404
            assert [r["version"] for r in client.get("/algorithms").json()] == ["2.0.0"]
            removed = client.delete(f"/algorithms/{NAME}/2.0.0")
            assert removed.status_code == 200, removed.text
    finally:
        srv.stop()


def test_upload_over_the_limit_is_413(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "root", max_zip_bytes=4096)
    try:
        with srv.client() as client:
            big = b"PK" + b"\0" * 20000
            multipart = client.post("/algorithms/install", files={"file": ("big.zip", big, "application/zip")})
            assert multipart.status_code == 413 and multipart.json()["code"] == "2014"
            raw = client.post("/algorithms/install", content=big, headers={"content-type": "application/zip"})
            assert raw.status_code == 413 and raw.json()["code"] == "2014"

            def chunks() -> object:
                for _ in range(20):
                    yield b"\0" * 1000  # no Content-Length: the stream itself must be cut off

            streamed = client.post("/algorithms/install", content=chunks(),  # type: ignore[arg-type]
                                   headers={"content-type": "application/zip"})
            assert streamed.status_code == 413
            on_disk = tmp_path / "big.zip"
            on_disk.write_bytes(big)
            by_path = client.post("/algorithms/install", json={"path": str(on_disk)})
            assert by_path.status_code == 413 and by_path.json()["code"] == "2014"
            validate = client.post("/algorithms/validate", files={"file": ("big.zip", big, "application/zip")})
            assert validate.status_code == 413
        uploads = srv.settings.layout.root / ".uploads"
        assert not uploads.exists() or not any(uploads.iterdir())
    finally:
        srv.stop()


def test_drop_folder_installs_are_served_and_counted(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "root", watch_drop_folder=True, drop_stable_s=0.2)
    try:
        zip_path = make_zip(tmp_path / "pkgs", "4.0.0")
        staged = srv.settings.layout.zips / (zip_path.name + ".part")
        staged.write_bytes(zip_path.read_bytes())
        staged.rename(srv.settings.layout.zips / zip_path.name)  # appears complete, in one step
        with srv.client() as client:
            wait_until(lambda: [r for r in client.get("/algorithms").json() if r["version"] == "4.0.0"], 240,
                     "the dropped zip to be installed")
            wait_until(lambda: 'procvision_installs_total{outcome="succeeded",source="drop-folder"} 1'
                     in client.get("/metrics").text, what="the drop-folder install in the metrics")
    finally:
        srv.stop()
