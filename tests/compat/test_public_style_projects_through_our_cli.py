"""Projects laid out as the public SDK's examples are (no requirements.txt; for 0.3.x no
supported_pids and no get_info), taken through OUR tools unchanged: procvision-cli validate --full,
procvision-cli package, install on the runner and POST /execute."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from procvision_algorithm_sdk.cli.main import main as sdk_cli
from tests.api.support import install, start_server
from tests.support import wheels as wheel_cache
from tests.support.public_packages import (
    execute_only_source,
    expected_facts,
    phase_source,
    png_bytes,
    sample_image,
)


def _project(root: Path, era: str) -> Path:
    root.mkdir(parents=True)
    (root / "algorithm").mkdir()
    (root / "algorithm" / "__init__.py").write_text("")
    manifest = {"name": f"style-{era}", "version": "1.0.0", "entry_point": "algorithm.main:Algorithm"}
    if era == "phase":
        manifest["supported_pids"] = ["P1"]
        manifest["steps"] = [{"index": 1, "name": "inspect"}]
        source = phase_source(manifest["name"], "1.0.0", ["P1"])
    else:
        source = execute_only_source()
    (root / "algorithm" / "main.py").write_text(source)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.mark.parametrize("era", ["phase", "execute-only"])
def test_public_style_project_validates_packages_installs_and_runs(tmp_path: Path, era: str) -> None:
    project = _project(tmp_path / "project", era)
    out, err = io.StringIO(), io.StringIO()
    assert sdk_cli(["validate", str(project), "--full", "--json"], out=out, err=err) == 0, out.getvalue()
    checks = {c["name"]: c["result"] for c in json.loads(out.getvalue())["checks"]}
    assert checks["requirements"] == "SKIP" and checks["execute[step 1]"] == "PASS"

    out, err = io.StringIO(), io.StringIO()
    code = sdk_cli(["package", str(project), "-o", str(tmp_path / "dist" / "pkg.zip"), "--offline",
                    "--wheels-from", str(wheel_cache.ensure())], out=out, err=err)
    assert code == 0, err.getvalue()
    zip_path = Path(out.getvalue().strip())
    assert zip_path == tmp_path / "dist" / "pkg.zip" and "requirements.txt not found" in err.getvalue()

    srv = start_server(tmp_path / "root")
    try:
        with srv.client() as client:
            op = install(client, zip_path)
            assert op["state"] == "succeeded", op
            name = f"style-{era}"
            assert op["result"]["dialect"] == ("procvision" if era == "phase" else "procvision-execute-only")
            assert client.post("/algorithms/activate", json={"name": name, "version": "1.0.0",
                                                             "pids": ["P1"]}).status_code == 200
            image, guide = sample_image(seed=5), sample_image(seed=6)
            files = {"image": ("i.png", png_bytes(image), "image/png")}
            if era == "execute-only":
                files["guide_image"] = ("g.png", png_bytes(guide), "image/png")
            response = client.post("/execute", data={"pid": "P1", "step_desc": "look"}, files=files)
            assert response.status_code == 200, response.text
            debug = response.json()["data"]["debug"]
            if era == "phase":
                assert debug["pixels"] == expected_facts(image)
            else:
                assert debug["cur"] == expected_facts(image) and debug["guide"] == expected_facts(guide)
    finally:
        srv.stop()
