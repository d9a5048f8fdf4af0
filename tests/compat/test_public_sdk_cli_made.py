"""A package made by the PUBLIC SDK's own tools, byte for byte: ``procvision-cli init`` scaffolds the
project (its template, untouched) and ``procvision-cli package`` zips it. Only the network step is
replaced: the wheels ``pip download`` would fetch are put into ``<project>/wheels/`` from the cache
and the package is made with ``--skip-download``.

The public 0.0.7 template declares its step with ``"index": 0`` (in manifest.json and get_info()),
while the wire protocol numbers steps from 1. Stations run such packages as they are, so the runner
must install, switch to and run them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.config import Settings
from runner.service import RunnerService
from runner.supervision.dialects import CallRequest, ImageInput
from tests.support.deploy import build_shared_venv
from tests.support.public_packages import EXECUTE_ONLY_SDK, PHASE_SDK, public_sdk_wheels, sample_image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

_RUN_CLI = "import sys; from procvision_algorithm_sdk.cli import main; sys.argv[0] = 'procvision-cli'; sys.exit(main())"


def _public_cli(python: Path, cwd: Path, *args: str) -> str:
    # The public SDK's own modules, not this checkout's: no PYTHONPATH or other overrides leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run([str(python), "-c", _RUN_CLI, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, f"public procvision-cli {args[0]} failed: {done.stdout}\n{done.stderr}"
    return done.stdout


def make_with_public_cli(python: Path, work: Path, sdk: str, name: str, version: str, pids: str = "") -> Path:
    """``procvision-cli init`` + ``package`` of the public SDK ``sdk``; returns the zip it wrote."""
    work.mkdir(parents=True, exist_ok=True)
    # 0.3.x dropped --pids from init (and supported_pids from the manifest) and embeds no Python by default.
    _public_cli(python, work, "init", name, "-d", "proj", "-v", version, *(["--pids", pids] if pids else []))
    project = work / "proj"
    deps = "numpy\npillow\n" if sdk == PHASE_SDK else "numpy\n"
    (project / "requirements.txt").write_text(f"procvision_algorithm_sdk=={sdk}\n{deps}", encoding="utf-8")
    wheels = project / "wheels"
    wheels.mkdir()
    for wheel in public_sdk_wheels(sdk):
        shutil.copy2(wheel, wheels / wheel.name)
    _public_cli(python, work, "package", "proj", "--skip-download",
                *(["--no-embed-python"] if sdk == PHASE_SDK else []))
    zip_path = work / f"{name}-v{version}-offline.zip"
    assert zip_path.is_file(), sorted(p.name for p in work.iterdir())
    return zip_path


def _public_python(tmp_path_factory: pytest.TempPathFactory, sdk: str) -> Path:
    # The venvs the supervision tests share (built once per run, under a file lock).
    venv = build_shared_venv(tmp_path_factory.getbasetemp().parent / "pv-deploy-venvs", sdk)
    return venv / "bin" / "python"


@pytest.fixture
def service(tmp_path: Path, compat_uv_cache: Path) -> Iterator[RunnerService]:
    settings = Settings(root=tmp_path / "root", uv_cache_dir=compat_uv_cache, watch_drop_folder=False)
    svc = RunnerService.create(settings)
    svc.start()
    try:
        yield svc
    finally:
        svc.close()


def _execute(svc: RunnerService, pid: str, **params: Any) -> dict[str, Any]:
    request = CallRequest(phase="execute", pid=pid, user_params=params, image=ImageInput(array=sample_image()))
    return svc.execute(pid, request)


def test_phase_era_package_made_by_the_public_cli_installs_switches_and_runs(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, service: RunnerService) -> None:
    python = _public_python(tmp_path_factory, PHASE_SDK)
    first = make_with_public_cli(python, tmp_path / "v1", PHASE_SDK, "screw_check", "1.2.0", "P100,P200")
    second = make_with_public_cli(python, tmp_path / "v2", PHASE_SDK, "screw_check", "1.3.0", "P100,P200")
    installed = service.install(first)
    assert installed["dialect"] == "public-phase", installed
    service.activate("screw_check", "1.2.0", ["P100"])
    ok = _execute(service, "P100")
    assert ok["status"] == "OK" and ok["data"]["result_status"] == "OK", ok
    ng = _execute(service, "P100", threshold=0.1)
    assert ng["data"]["result_status"] == "NG" and ng["data"]["ng_reason"] == "threshold too low", ng
    # The template's pre_execute reads the image too.
    pre = service.execute("P100", CallRequest(phase="pre", pid="P100", image=ImageInput(array=sample_image())))
    assert pre["status"] == "OK", pre
    # A switch proves the new version with an info call: the template's step 0 must pass it.
    service.install(second)
    service.switch("screw_check", "1.3.0", ["P100"])
    assert _execute(service, "P100")["served_by"]["version"] == "1.3.0"


def test_execute_only_package_made_by_the_public_cli_installs_and_runs(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, service: RunnerService) -> None:
    """The 0.3.x template's manifest has no ``supported_pids`` (0.3.x dropped the field; its own
    validate requires only name, version and entry_point). Which pids a station runs it for is the
    operator's choice at activation."""
    python = _public_python(tmp_path_factory, EXECUTE_ONLY_SDK)
    zip_path = make_with_public_cli(python, tmp_path / "v1", EXECUTE_ONLY_SDK, "guide_check", "2.0.0")
    installed = service.install(zip_path)
    assert installed["dialect"] == "public-execute-only", installed
    service.activate("guide_check", "2.0.0", ["P300"])
    request = CallRequest(phase="execute", pid="P300", image=ImageInput(array=sample_image()),
                          guide_image=ImageInput(array=sample_image(seed=5)), step_desc="check the guide",
                          guide_info=[{"label": "hole", "posList": []}])
    result = service.execute("P300", request)
    assert result["status"] == "OK" and result["data"]["result_status"] == "OK", result
    assert result["data"]["debug"] == {"step_index": 1, "step_desc": "check the guide", "guide_info_count": 1}
