"""The station bundle installs the runner from its wheel: the console's page files must be in it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_every_console_file(tmp_path: Path) -> None:
    build = subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
                           cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("procvision_runner-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    static = REPO / "runner" / "console" / "static"
    expected = {f"runner/console/static/{p.relative_to(static).as_posix()}" for p in static.rglob("*") if p.is_file()}
    assert {"runner/console/static/index.html", "runner/console/static/js/main.js"} <= expected
    assert expected <= names, sorted(expected - names)
