"""Requests the API must refuse up front with a clear 422 problem, and the lifecycle of a version
that was uninstalled or recorded invalid and installed again (real daemon, real installs)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.api.support import NAME, RunningServer, install, make_zip, png_bytes, start_server
from tests.support.packages import build_package, manifest_for
from tests.support.public_packages import EXECUTE_ONLY_SDK, build_public_package
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("refusals") / "root")
    yield srv
    srv.stop()


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    return dict(body)


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_npy_with_four_channels_is_refused_naming_the_shape(server: RunningServer) -> None:
    rgba = np.zeros((6, 7, 4), dtype=np.uint8)
    with server.client() as client:
        response = client.post("/execute", data={"pid": "P001"},
                               files={"image": ("a.npy", _npy(rgba), "application/octet-stream")})
    body = _problem(response, 422, "1002")
    assert "(6, 7, 4)" in str(body["detail"]) and "H x W x 3" in str(body["detail"])


@pytest.mark.parametrize("kind", ["not_zip", "symlink", "directory", "missing"])
def test_install_by_path_takes_only_regular_zip_files(server: RunningServer, tmp_path: Path, kind: str) -> None:
    target = tmp_path / "x.zip"
    if kind == "not_zip":
        target = tmp_path / "shadow"
        target.write_text("secret")
    elif kind == "symlink":
        secret = tmp_path / "secret.txt"
        secret.write_text("secret")
        os.symlink(secret, target)
    elif kind == "directory":
        target.mkdir()
    with server.client() as client:
        response = client.post("/algorithms/install", json={"path": str(target)})
    # Refused before an install operation starts (a 202 would mean the daemon went on to open it).
    body = _problem(response, 422, "2013")
    assert str(target) in str(body["detail"])


def test_install_by_path_follows_a_symlink_to_a_real_zip(server: RunningServer, tmp_path: Path) -> None:
    real = make_zip(tmp_path / "pkgs", "3.0.0")
    link = tmp_path / "link.zip"
    os.symlink(real, link)
    with server.client() as client:
        response = client.post("/algorithms/install", json={"path": str(link)})
        assert response.status_code == 202, response.text
        op = wait_until(lambda: (lambda o: o if o["state"] in ("succeeded", "failed") else None)(
            client.get(f"/operations/{response.json()['id']}").json()), 240, "the install")
        assert op["state"] == "succeeded", op


def test_execute_only_call_without_guide_image_is_422(tmp_path: Path) -> None:
    zip_path = build_public_package(tmp_path / "pkgs", sdk=EXECUTE_ONLY_SDK, name="pub_eo_r", pids=("E09",))
    srv = start_server(tmp_path / "root")
    try:
        with srv.client() as client:
            assert install(client, zip_path)["state"] == "succeeded"
            activated = client.post("/algorithms/activate", json={"name": "pub_eo_r", "version": "1.0.0",
                                                                  "pids": ["E09"]})
            assert activated.status_code == 200, activated.text
            response = client.post("/execute", data={"pid": "E09"},
                                   files={"image": ("cur.png", png_bytes(), "image/png")})
            body = _problem(response, 422, "1003")
            assert "guide_image" in str(body["detail"]) and "execute-only" in str(body["detail"])
    finally:
        srv.stop()


def test_uninstall_then_reinstall_shows_installed(server: RunningServer, tmp_path: Path) -> None:
    zip_path = make_zip(tmp_path / "pkgs", "5.0.0")
    with server.client() as client:
        assert install(client, zip_path)["state"] == "succeeded"
        started = client.post(f"/algorithms/{NAME}/5.0.0/start")
        assert started.status_code == 200, started.text
        stopped = client.post(f"/algorithms/{NAME}/5.0.0/stop")
        assert stopped.status_code == 200, stopped.text
        assert client.delete(f"/algorithms/{NAME}/5.0.0").status_code == 200
        assert install(client, zip_path)["state"] == "succeeded"
        listed = {r["version"]: r for r in client.get("/algorithms", params={"name": NAME}).json()}
        assert listed["5.0.0"]["state"] == "installed", listed["5.0.0"]
        assert client.get(f"/algorithms/{NAME}/5.0.0").json()["workers"] is None


def test_invalid_version_rerun_and_reinstall(server: RunningServer, tmp_path: Path) -> None:
    broken_source = "raise RuntimeError('broken on purpose')\n"
    manifest = manifest_for(name="review_bad", version="1.0.0", pids=("R01",))
    broken = build_package(tmp_path / "bad", manifest=manifest,
                           files={"algo/__init__.py": "", "algo/main.py": broken_source})
    with server.client() as client:
        failed = install(client, broken)
        assert failed["state"] == "failed", failed
        record = client.get("/algorithms/review_bad/1.0.0").json()
        assert record["state"] == "invalid"

        report = client.post("/algorithms/validate", json={"name": "review_bad", "version": "1.0.0", "rerun": True})
        assert report.status_code == 200, report.text
        body = report.json()
        assert body["summary"]["status"] == "FAIL" and body["checks"], body
        assert "recorded invalid" in body["note"] and "not deployed" in body["note"]
        assert "No such file" not in report.text

        good = make_zip(tmp_path / "good", "1.0.0", name="review_bad", pids=("R01",))
        assert install(client, good)["state"] == "succeeded"
        fresh = client.get("/algorithms/review_bad/1.0.0").json()
        assert fresh["state"] == "installed"
        # A new install, not the failed attempt: created when this install published it.
        assert record["created_at"] < fresh["created_at"] <= fresh["updated_at"], (record, fresh)
