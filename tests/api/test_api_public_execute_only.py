"""POST /execute against a worker on the public SDK 0.3.x (execute-only): image + guide_image +
step_desc + guide_info reach the algorithm; phase=pre is refused with a clear 422."""

from __future__ import annotations

import json
from pathlib import Path

from tests.api.support import install, png_bytes, start_server
from tests.support.public_packages import EXECUTE_ONLY_SDK, build_public_package


def test_execute_only_worker(tmp_path: Path) -> None:
    zip_path = build_public_package(tmp_path / "pkgs", sdk=EXECUTE_ONLY_SDK, name="pub_eo", pids=("E01",))
    srv = start_server(tmp_path / "root")
    try:
        with srv.client() as client:
            op = install(client, zip_path)
            assert op["state"] == "succeeded", op
            assert op["result"]["dialect"] == "public-execute-only"
            activated = client.post("/algorithms/activate", json={"name": "pub_eo", "version": "1.0.0",
                                                                  "pids": ["E01"]})
            assert activated.status_code == 200, activated.text

            guide = [{"label": "hole", "posList": [{"x": 1, "y": 2, "width": 3, "height": 4}]}]
            response = client.post("/execute", data={"pid": "E01", "step_index": "2", "step_desc": "check hole",
                                                     "guide_info": json.dumps(guide)},
                                   files={"image": ("cur.png", png_bytes(10, (20, 30)), "image/png"),
                                          "guide_image": ("guide.png", png_bytes(90, (8, 9)), "image/png")})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["status"] == "OK" and body["served_by"]["dialect"] == "public-execute-only"
            debug = body["data"]["debug"]
            assert debug["step_index"] == 2 and debug["step_desc"] == "check hole"
            assert debug["guide_info"] == guide
            assert debug["cur"]["shape"][:2] == [20, 30] and debug["guide"]["shape"][:2] == [8, 9]

            refused = client.post("/execute", data={"pid": "E01", "phase": "pre"},
                                  files={"image": ("cur.png", png_bytes(), "image/png")})
            assert refused.status_code == 422 and refused.json()["code"] == "2013"
            assert "execute-only" in refused.json()["detail"]
    finally:
        srv.stop()
