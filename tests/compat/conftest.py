"""Fixtures of the public-SDK compatibility tests: package zips built the public packager's way, and a
warm uv cache per xdist worker (installs stay well under a second after the first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.public_packages import EXECUTE_ONLY_SDK, PHASE_SDK, build_public_package

#: Names, versions and pids of the three packages most compat tests use.
PHASE = ("pub_phase", "1.0.0", "P007")
EXECUTE_ONLY = ("pub_exec", "1.0.0", "P032")
OURS = ("pub_ours", "1.0.0", "POURS")


@pytest.fixture(scope="session")
def compat_uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "uv-cache-compat"


@pytest.fixture(scope="session")
def compat_zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Zips keyed by SDK: "0.0.7" and "0.3.2" carry the public wheels; "ours" carries the SAME
    phase-era source with this checkout's SDK wheel instead."""
    base = tmp_path_factory.mktemp("compat-zips")
    return {
        PHASE_SDK: build_public_package(base / "phase", sdk=PHASE_SDK, name=PHASE[0], version=PHASE[1],
                                        pids=[PHASE[2]], project_dir="phase_project"),
        EXECUTE_ONLY_SDK: build_public_package(base / "exec", sdk=EXECUTE_ONLY_SDK, name=EXECUTE_ONLY[0],
                                               version=EXECUTE_ONLY[1], pids=[EXECUTE_ONLY[2]],
                                               project_dir="exec_project"),
        "ours": build_public_package(base / "ours", sdk="ours", name=OURS[0], version=OURS[1], pids=[OURS[2]],
                                     project_dir="ours_project"),
    }
