"""Public-SDK versions installed WITHOUT the smoke test (setting ``smoke_test`` off): the runner then
learns the dialect only when a worker says hello, and must still treat execute-only workers as such."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.service import RunnerService
from runner.supervision.dialects import CallRequest, ImageInput
from tests.support.public_packages import EXECUTE_ONLY_SDK, build_public_package, expected_facts, sample_image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

NAME, PID = "pub_exec_nosmoke", "P032"


@pytest.fixture
def service(tmp_path: Path, compat_uv_cache: Path) -> Iterator[RunnerService]:
    settings = Settings(root=tmp_path / "root", uv_cache_dir=compat_uv_cache, smoke_test=False,
                        watch_drop_folder=False)
    svc = RunnerService.create(settings)
    svc.start()
    try:
        for version in ("1.0.0", "1.1.0"):
            zip_path = build_public_package(tmp_path / version, sdk=EXECUTE_ONLY_SDK, name=NAME, version=version,
                                            pids=[PID])
            assert svc.install(zip_path)["state"] == "installed"
        yield svc
    finally:
        svc.close()


def _execute(svc: RunnerService, phase: str = "execute") -> dict[str, Any]:
    request = CallRequest(phase=phase, pid=PID, image=ImageInput(array=sample_image()),
                          guide_image=ImageInput(array=sample_image(seed=3)), step_desc="check")
    return svc.execute(PID, request)


def test_execute_only_version_without_smoke_report_serves_switches_and_refuses_pre(service: RunnerService) -> None:
    service.activate(NAME, "1.0.0", [PID])
    result = _execute(service)
    assert result["status"] == "OK", result
    assert result["data"]["debug"]["cur"] == expected_facts(sample_image())
    # `pre` is refused up front (2013), as for versions whose smoke test recorded the dialect.
    with pytest.raises(RunnerError) as caught:
        _execute(service, phase="pre")
    assert caught.value.code == "2013", caught.value
    # A switch proves the new version with an info call unless it is execute-only, which has no
    # info: the dialect must come from the started worker when the registry has none.
    service.switch(NAME, "1.1.0", [PID])
    after = _execute(service)
    assert after["status"] == "OK" and after["served_by"]["version"] == "1.1.0", after
