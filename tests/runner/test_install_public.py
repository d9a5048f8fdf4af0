"""Packages written for the public ProcVision SDK (0.0.7 phase protocol, 0.3.x execute-only) install
through the same pipeline and are smoke-tested in their own dialect."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.package.installer import Installer
from runner.store.registry import Registry
from tests.support import wheels as wheel_cache
from tests.support.algorithms import algorithm_info, algorithm_source
from tests.support.packages import build_package, manifest_for

pytestmark = pytest.mark.slow

#: Phase era (0.0.x): the image is read from shared memory and its height checked against the meta.
PHASE_SOURCE = algorithm_source(
    info=algorithm_info("pub_algo", "0.1.0", ("P001",)), sdk_names=["read_image_from_shared_memory"],
    execute="""
        image = read_image_from_shared_memory(shared_mem_id, image_meta)
        verdict = "OK" if image.shape[0] == image_meta["height"] else "NG"
        return {"status": "OK", "data": {"result_status": verdict, "ng_reason": "size", "defect_rects": []}}
    """)

#: Execute-only era (0.3.x): the runner hands decoded current and guide images.
EXECUTE_ONLY_SOURCE = algorithm_source(style="execute_only", execute="""
    same = cur_image.shape == guide_image.shape
    return {"status": "OK", "data": {"result_status": "OK" if same else "NG", "ng_reason": "shape",
                                     "defect_rects": []}}
""")


def _public_package(tmp_path: Path, version: str, source: str, layout: str) -> Path:
    cache = wheel_cache.ensure().parent / "public-sdk" / version
    wheels = sorted(cache.glob("*.whl"))
    assert wheels, f"public SDK {version} wheels are missing from {cache}"
    names = "\n".join(w.name.split("-")[0] for w in wheels)
    return build_package(tmp_path / "src", manifest=manifest_for("pub_algo", "0.1.0"),
                         files={"algo/__init__.py": "", "algo/main.py": source}, wheels=wheels, with_sdk=False,
                         requirements=names + "\n", layout=layout)


@pytest.mark.parametrize(("version", "source", "dialect", "steps"), [
    ("0.0.7", PHASE_SOURCE, "public-phase", ["hello", "info", "pre", "execute"]),
    ("0.3.2", EXECUTE_ONLY_SOURCE, "public-execute-only", ["hello", "execute"]),
])
def test_public_sdk_package_installs_in_its_dialect(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                                    version: str, source: str, dialect: str,
                                                    steps: list[str]) -> None:
    uv_cache = tmp_path_factory.getbasetemp() / "uv-cache-install"
    settings = Settings(root=tmp_path / "root", uv_cache_dir=uv_cache)
    installer = Installer(settings, Registry(settings.layout))
    try:
        result = installer.install(_public_package(tmp_path, version, source, layout="public"))
    except RunnerError as exc:
        pytest.fail(f"{exc} {exc.details}")
    assert result.dialect == dialect
    assert result.report is not None and [s["name"] for s in result.report["steps"]] == steps
    record = installer.registry.require("pub_algo", "0.1.0")
    assert record["sdk_version"] == version and record["dialect"] == dialect
    assert record["package_dir"] == "pub_algo"
    assert list(settings.layout.staging.iterdir()) == []
