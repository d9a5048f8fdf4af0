"""Code written for the public SDK 0.3.x (execute-only), unchanged, packaged with OUR SDK: the same
pixels, step_desc and guide_info reach it, through shared memory instead of files, and what the
public adapter loses (the algorithm's error_code, prints) is kept or made harmless."""

from __future__ import annotations

import json
from pathlib import Path

from tests.api.support import install, start_server
from tests.support.public_packages import (
    build_public_package,
    execute_only_source,
    expected_facts,
    png_bytes,
    sample_image,
)


def test_execute_only_source_runs_unchanged_on_our_sdk(tmp_path: Path) -> None:
    zip_path = build_public_package(tmp_path / "pkgs", sdk="ours", name="eo_ours", pids=["E09"],
                                    source=execute_only_source())
    srv = start_server(tmp_path / "root")
    try:
        with srv.client() as client:
            op = install(client, zip_path)
            assert op["state"] == "succeeded", op
            assert op["result"]["dialect"] == "procvision-execute-only"
            assert client.post("/algorithms/activate", json={"name": "eo_ours", "version": "1.0.0",
                                                             "pids": ["E09"]}).status_code == 200

            def execute(step_desc: str, color_space: str = "RGB") -> dict:
                cur, guide = sample_image(seed=31), sample_image(23, 41, seed=32)
                guide_info = [{"label": "screw", "posList": [{"x": 1, "y": 2, "width": 3, "height": 4}]}]
                response = client.post("/execute", data={"pid": "E09", "step_index": "3", "step_desc": step_desc,
                                                         "guide_info": json.dumps(guide_info),
                                                         "color_space": color_space},
                                       files={"image": ("c.png", png_bytes(cur), "image/png"),
                                              "guide_image": ("g.png", png_bytes(guide), "image/png")})
                assert response.status_code == 200, response.text
                body = dict(response.json())
                body["_sent"] = (cur, guide, guide_info)
                return body

            ok = execute("check screw")
            cur, guide, guide_info = ok["_sent"]
            debug = ok["data"]["debug"]
            assert ok["status"] == "OK" and ok["served_by"]["dialect"] == "procvision-execute-only"
            assert debug["cur"] == expected_facts(cur) and debug["guide"] == expected_facts(guide)
            assert (debug["step_index"], debug["step_desc"], debug["guide_info"]) == (3, "check screw", guide_info)
            # Shared memory segments, no image files (a boxed worker's folder holds its own segments).
            assert [f for f in debug["shm_files"] if not f.startswith("pvshm-")] == [], debug["shm_files"]

            failed = execute("fail")  # the public adapter reports this as 1000
            assert (failed["status"], failed["error_code"]) == ("ERROR", "1003"), failed
            raised = execute("raise")
            assert raised["error_code"] == "1009" and "blew up" in raised["message"]
            printed = execute("print")  # goes to the worker log, never into the protocol stream
            assert printed["status"] == "OK", printed
    finally:
        srv.stop()
