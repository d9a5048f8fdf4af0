"""The public SDK's cli functions and procvision-cli options of both eras, on projects of both styles."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from procvision_algorithm_sdk import cli
from procvision_algorithm_sdk.cli.main import main

EXAMPLE_EO = Path(__file__).resolve().parents[2] / "example-algorithm-execute-only"


def _png(path: Path, value: int = 120, spot: bool = False) -> Path:
    from PIL import Image

    img = np.full((64, 80, 3), value, dtype=np.uint8)
    if spot:
        img[20:36, 40:56] = 10
    Image.fromarray(img).save(path)
    return path


def test_init_project_in_the_0_3_form_makes_an_execute_only_project(tmp_path: Path) -> None:
    made = cli.init_project("demo_algo", str(tmp_path / "eo"), "1.0.0", "demo")
    assert made["status"] == "OK"
    manifest = json.loads((tmp_path / "eo" / "manifest.json").read_text())
    assert "supported_pids" not in manifest and manifest["version"] == "1.0.0"
    assert cli.validate(str(tmp_path / "eo"), None, None)["summary"]["status"] == "PASS"
    report = cli.validate_adapter(str(tmp_path / "eo"), None)
    assert report["summary"]["status"] == "PASS", report
    cur, guide = _png(tmp_path / "cur.png", spot=True), _png(tmp_path / "guide.png")
    ran = cli.run(str(tmp_path / "eo"), str(cur), str(guide), 1, "demo", [])
    assert ran["execute"]["data"]["result_status"] == "NG"
    via_worker = cli.run_adapter(str(tmp_path / "eo"), str(cur), str(guide), 1, "demo", [], None)
    assert via_worker["execute"]["data"]["result_status"] == "NG", via_worker
    assert via_worker["execute"]["data"]["defect_rects"][0]["x"] == 32  # cells of 16 px around the spot


def test_init_project_in_the_0_0_form_makes_a_phase_project(tmp_path: Path) -> None:
    made = cli.init_project("demo_algo", str(tmp_path / "ph"), "D01,D02", "1.0.0", "demo")
    assert made["status"] == "OK"
    manifest = json.loads((tmp_path / "ph" / "manifest.json").read_text())
    assert manifest["supported_pids"] == ["D01", "D02"]
    assert cli.validate(str(tmp_path / "ph"), None, None)["summary"]["status"] == "PASS"
    image = _png(tmp_path / "part.png")
    ran = cli.run(str(tmp_path / "ph"), "D01", str(image), json.dumps({"min_brightness": 200}), 1)
    assert ran["pre_execute"]["status"] == "OK" and ran["execute"]["data"]["result_status"] == "NG"
    via_worker = cli.run_adapter(str(tmp_path / "ph"), "D01", str(image), "{}", 1, None)
    assert via_worker["pre_execute"]["status"] == "OK" and via_worker["execute"]["status"] == "OK", via_worker
    no_params = cli.run_adapter(str(tmp_path / "ph"), "D01", str(image), None, 1, None)
    assert no_params["pre_execute"]["status"] == "OK", no_params


def test_unreadable_image_files_read_black_as_in_the_public_sdk(tmp_path: Path) -> None:
    cli.init_project("demo_algo", str(tmp_path / "eo"), "1.0.0", "demo")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01demo")
    result = cli.run_adapter(str(tmp_path / "eo"), str(junk), str(junk), 1, "demo", [], None)
    assert result["execute"]["status"] == "OK" and result["execute"]["data"]["result_status"] == "OK"


def test_missing_manifest_is_a_failed_report(tmp_path: Path) -> None:
    report = cli.validate(project=str(tmp_path / "nothing"), manifest=None, zip_path=None)
    assert report["summary"]["status"] == "FAIL"
    assert cli.run_adapter(str(tmp_path), "P", "x.png", "{}", 1)["pre_execute"]["status"] == "ERROR"


def test_cli_style_flag_and_execute_only_run_options(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["init", "my-eo", "-d", str(tmp_path / "p"), "--style", "execute-only", "-v", "2.0.0",
                 "-e", "compares"], out=out, err=err) == 0, err.getvalue()
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["description"] == "compares"
    out = io.StringIO()
    assert main(["validate", "--manifest", str(tmp_path / "p" / "manifest.json"), "--full", "--json"],
                out=out, err=io.StringIO()) == 0, out.getvalue()
    cur, guide = _png(tmp_path / "cur.png", spot=True), _png(tmp_path / "guide.png")
    guide_info = tmp_path / "gi.json"
    guide_info.write_text(json.dumps([{"label": "lid", "posList": [{"x": 0, "y": 0, "width": 10, "height": 10}]}]))
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", str(tmp_path / "p"), "--cur-image", str(cur), "--image", str(guide), "--step-desc", "lid",
                 "--guide-info", f"@{guide_info}", "--json", "--tail-logs"], out=out, err=err)
    assert code == 0, err.getvalue()
    assert json.loads(out.getvalue())["execute"]["data"]["result_status"] == "NG"
    assert '"message": "compared"' in err.getvalue()  # --tail-logs shows the worker's log
    err = io.StringIO()
    assert main(["run", str(tmp_path / "p"), "--pid", "A01", "--image", str(cur)], out=io.StringIO(), err=err) == 2
    assert "--cur-image" in err.getvalue()


@pytest.mark.parametrize("flags, needle", [
    (["--embed-python"], "runtime"),
    (["--python-runtime", "C:/py"], "runtime"),
    (["--runtime-abi", "cp310"], "runtime"),
    (["-s"], "--skip-download"),
])
def test_public_package_options_we_refuse_say_why(tmp_path: Path, flags: list[str], needle: str) -> None:
    err = io.StringIO()
    assert main(["package", str(EXAMPLE_EO), "-o", str(tmp_path)] + flags, out=io.StringIO(), err=err) == 2
    assert needle in err.getvalue() and not list(tmp_path.iterdir())
    result = cli.package(str(EXAMPLE_EO), str(tmp_path / "x.zip"), None, True, None, None, None, None,
                         "-s" in flags, "--embed-python" in flags, None, None, "cp310" if "--runtime-abi" in flags
                         else None)
    if flags[0] != "--python-runtime":
        assert result["status"] == "ERROR" and needle in result["message"]
