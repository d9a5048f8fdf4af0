"""An execute-only algorithm packaged with OUR SDK (the execute-only example): installed with its
smoke test, served through POST /execute and the runner CLI with image + guide_image + step_desc +
guide_info, the algorithm's error_code reaching the caller, phase=pre refused."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from runner.cli.main import main as runner_cli
from tests.api.support import install, start_server
from tests.support.packages import build_package

EXAMPLE = Path(__file__).resolve().parents[2] / "example-algorithm-execute-only"


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _example_files() -> dict[str, str]:
    return {str(p.relative_to(EXAMPLE)): p.read_text(encoding="utf-8")
            for p in sorted(EXAMPLE.glob("guide_compare/*.py"))}


def test_our_execute_only_worker_end_to_end(tmp_path: Path) -> None:
    manifest = json.loads((EXAMPLE / "manifest.json").read_text(encoding="utf-8"))
    zip_path = build_package(tmp_path / "pkgs", manifest=manifest, files=_example_files())
    srv = start_server(tmp_path / "root")
    try:
        with srv.client() as client:
            op = install(client, zip_path)
            assert op["state"] == "succeeded", op
            assert op["result"]["dialect"] == "procvision-execute-only"
            # The smoke test ran the execute-only call (two images), not pre/execute.
            smoke = op["result"]["report"]
            assert [(step["name"], step["result"]) for step in smoke["steps"]] == [("hello", "PASS"),
                                                                                    ("execute", "PASS")], smoke
            activated = client.post("/algorithms/activate", json={"name": manifest["name"], "version": "1.0.0",
                                                                  "pids": ["G01"]})
            assert activated.status_code == 200, activated.text

            guide = np.full((96, 128, 3), 180, dtype=np.uint8)
            cur = guide.copy()
            cur[40:56, 64:80] = 20  # a dark patch the guide image does not have
            info = [{"label": "lid", "posList": [{"x": 48, "y": 32, "width": 48, "height": 40}]}]
            response = client.post("/execute", data={"pid": "G01", "step_index": "1", "step_desc": "lid check",
                                                     "guide_info": json.dumps(info)},
                                   files={"image": ("cur.png", _png(cur), "image/png"),
                                          "guide_image": ("guide.png", _png(guide), "image/png")})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["served_by"]["dialect"] == "procvision-execute-only"
            data = body["data"]
            assert data["result_status"] == "NG" and data["ng_reason"].startswith("lid check:")
            rect = data["defect_rects"][0]
            assert rect["label"] == "lid" and rect["x"] <= 64 < rect["x"] + rect["width"]
            assert data["position_rects"][0]["label"] == "lid"

            # The algorithm's own error code reaches the caller (the public adapter drops it).
            small = client.post("/execute", data={"pid": "G01"},
                                files={"image": ("cur.png", _png(cur[:50]), "image/png"),
                                       "guide_image": ("guide.png", _png(guide), "image/png")})
            result = small.json()
            assert small.status_code == 200 and result["status"] == "ERROR", result
            assert (result["error_code"], result["error_name"]) == ("1002", "image_load_failed")
            assert "same size" in result["message"]

            refused = client.post("/execute", data={"pid": "G01", "phase": "pre"},
                                  files={"image": ("cur.png", _png(cur), "image/png")})
            assert refused.status_code == 422 and refused.json()["code"] == "2013"

        # The runner's CLI sends the same call.
        (tmp_path / "cur.png").write_bytes(_png(cur))
        (tmp_path / "guide.png").write_bytes(_png(guide))
        out, err = io.StringIO(), io.StringIO()
        code = runner_cli(["execute", "--pid", "G01", "--image", str(tmp_path / "cur.png"), "--guide-image",
                           str(tmp_path / "guide.png"), "--step-desc", "cli", "--json", "--url", srv.url,
                           "--root", str(srv.settings.root)], out=out, err=err)
        assert code == 0, err.getvalue()
        assert json.loads(out.getvalue())["data"]["result_status"] == "NG"
    finally:
        srv.stop()
