"""``procvision-cli run``: real worker, real shared memory, real PNG files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from procvision_algorithm_sdk.cli.main import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example-algorithm"


def save_png(path: Path, defect: bool) -> Path:
    from PIL import Image

    rng = np.random.default_rng(7)
    gray = np.clip(rng.normal(185, 5, (600, 960)), 0, 255).astype(np.uint8)
    if defect:
        gray[400:430, 700:745] = 30
    Image.fromarray(np.stack([gray] * 3, axis=2)).save(path)
    return path


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", *args], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_png_with_dark_defect_is_ng_with_rect_near_it(tmp_path: Path) -> None:
    image = save_png(tmp_path / "defect.png", defect=True)
    code, out, err = run_cli(str(EXAMPLE), "--pid", "A01", "--image", str(image), "--step", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["pre_execute"]["status"] == "OK"
    data = result["execute"]["data"]
    assert data["result_status"] == "NG"
    (rect,) = data["defect_rects"]
    assert abs(rect["x"] - 700) <= 4 and abs(rect["y"] - 400) <= 4
    assert abs(rect["width"] - 45) <= 8 and abs(rect["height"] - 30) <= 8


def test_clean_png_is_ok_and_table_output(tmp_path: Path) -> None:
    image = save_png(tmp_path / "clean.png", defect=False)
    code, out, err = run_cli(str(EXAMPLE), "--pid", "A02", "--image", str(image), "--step", "2",
                             "--params", '{"mode": "precise"}', "--session", "s-42")
    assert code == 0, err
    assert "execute:     OK, result_status OK" in out


def test_run_reports_algorithm_errors_with_their_code(tmp_path: Path) -> None:
    image = save_png(tmp_path / "clean.png", defect=False)
    code, out, _ = run_cli(str(EXAMPLE), "--pid", "A01", "--image", str(image), "--params", '{"mode": "x"}',
                           "--step", "2")
    assert code == 1
    assert "ERROR 1003" in out and "skipped" in out
    code, out, _ = run_cli(str(EXAMPLE), "--pid", "NOPE", "--image", str(image))
    assert code == 1 and "ERROR 1001" in out


@pytest.mark.parametrize("args", [
    ["--pid", "A01"],  # no --image
    ["--pid", "A01", "--image", "missing.png"],
    ["--pid", "A01", "--image", "IMG", "--params", "[1, 2]"],
    ["--pid", "A01", "--image", "IMG", "--params", "{bad"],
])
def test_run_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    image = save_png(tmp_path / "clean.png", defect=False)
    args = [str(image) if a == "IMG" else a for a in args]
    assert run_cli(str(EXAMPLE), *args)[0] == 2


def test_run_npy_as_a_real_subprocess(tmp_path: Path) -> None:
    arr = np.full((300, 400, 3), 180, dtype=np.uint8)
    arr[100:120, 200:230] = 25
    npy = tmp_path / "img.npy"
    np.save(npy, arr)
    proc = subprocess.run([sys.executable, "-m", "procvision_algorithm_sdk.cli.main", "run", str(EXAMPLE),
                           "--pid", "A01", "--image", str(npy), "--step", "2"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "result_status NG" in proc.stdout
    assert "defect[0]:   x=200 y=100" in proc.stdout


def test_run_says_which_step_ran_and_refuses_an_undeclared_one(tmp_path: Path) -> None:
    image = save_png(tmp_path / "clean.png", defect=False)
    code, out, err = run_cli(str(EXAMPLE), "--pid", "A01", "--image", str(image), "--step", "2")
    assert code == 0, err
    assert out.splitlines()[0] == "step:        2 (inspect)"
    code, out, err = run_cli(str(EXAMPLE), "--pid", "A01", "--image", str(image), "--step", "3")
    assert code == 2 and out == ""
    assert "--step 3 is not a step of this algorithm" in err and "1 (locate), 2 (inspect)" in err
