"""Packages made by the PUBLIC SDK's own packager (its ``init`` + ``package``, byte for byte), signed
afterwards with our ``procvision-cli sign``, install under ``trust_mode require``; unsigned, the same zip is
refused. Signing works on any package zip: the signature goes beside the manifest in the public layout
(``<project>/package.sig``) and covers the root-level ``wheels/`` too."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from procvision_algorithm_sdk.cli.main import main as sdk_cli
from runner.config import Settings
from runner.errors import RunnerError
from runner.service import RunnerService
from runner.trust.store import TrustStore
from tests.compat.test_public_sdk_cli_made import _public_python, make_with_public_cli
from tests.support.public_packages import EXECUTE_ONLY_SDK, PHASE_SDK
from tests.support.signing import make_key

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def service(tmp_path: Path, compat_uv_cache: Path) -> Iterator[RunnerService]:
    settings = Settings(root=tmp_path / "root", uv_cache_dir=compat_uv_cache, watch_drop_folder=False,
                        trust_mode="require")
    svc = RunnerService.create(settings)
    svc.start()
    try:
        yield svc
    finally:
        svc.close()


@pytest.mark.parametrize("sdk", [PHASE_SDK, EXECUTE_ONLY_SDK])
def test_public_package_signed_with_procvision_cli_installs_under_require(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, service: RunnerService, sdk: str) -> None:
    key = make_key(tmp_path / "keys")
    TrustStore(service.layout).add(key.public.read_bytes())
    python = _public_python(tmp_path_factory, sdk)
    made = make_with_public_cli(python, tmp_path / "made", sdk, "signed_check", "1.0.0",
                                "P100" if sdk == PHASE_SDK else "")
    with pytest.raises(RunnerError) as refused:
        service.install(made)
    assert refused.value.code == "2030"

    signed = tmp_path / "signed.zip"
    err = io.StringIO()
    assert sdk_cli(["sign", str(made), "--key", str(key.private), "-o", str(signed)], out=io.StringIO(),
                   err=err) == 0, err.getvalue()
    with zipfile.ZipFile(signed) as zf:
        names = zf.namelist()
    assert "proj/package.sig" in names and any(n.startswith("wheels/") for n in names)
    installed = service.install(signed)
    assert installed["state"] == "installed", installed
    record = service.registry.get("signed_check", "1.0.0")
    assert record is not None and record["signature"]["status"] == "verified"
    assert record["signature"]["signer"]["fingerprint"] == key.fingerprint
