"""The SDK wheel is built from the running SDK, deterministically, and installs offline."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from procvision_algorithm_sdk.wheel_builder import build_sdk_wheel, sdk_version
from tests.support import wheels


def test_wheel_is_deterministic_and_complete(tmp_path: Path) -> None:
    first = build_sdk_wheel(tmp_path / "a")
    second = build_sdk_wheel(tmp_path / "b")
    assert first.name == f"procvision_algorithm_sdk-{sdk_version()}-py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        assert "procvision_algorithm_sdk/protocol.py" in names
        assert not any("__pycache__" in n for n in names)
        record = zf.read(f"procvision_algorithm_sdk-{sdk_version()}.dist-info/RECORD").decode()
        assert "procvision_algorithm_sdk/protocol.py,sha256=" in record
        assert zf.testzip() is None


def test_wheel_installs_offline_into_a_fresh_venv(tmp_path: Path) -> None:
    cache = wheels.ensure()
    wheel_dir = tmp_path / "wheels"
    build_sdk_wheel(wheel_dir)
    venv = tmp_path / "venv"
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    subprocess.run([*uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "--offline",
                    "--no-index", "--find-links", str(wheel_dir), "--find-links", str(cache),
                    "procvision-algorithm-sdk"], check=True, timeout=300)
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import procvision_algorithm_sdk.protocol as p; print(p.HELLO)"],
                         check=True, timeout=60, capture_output=True, text=True)
    assert out.stdout.strip() == "hello"
