"""Package trust at install time: under require, every bad signature is rejected with its own code, before
anything of the package runs. The canary package proves it: a wheel whose ``.pth`` file writes a canary
(it runs in every process of the venv, the smoke test included) and an algorithm whose import writes
another. A rejected package must leave neither; the same package, signed by a trusted key, leaves both."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.package.installer import Installer
from runner.store.registry import Registry
from runner.trust.store import TrustStore
from tests.support.packages import (
    build_package,
    make_wheel,
    manifest_for,
    root_is_clean,
    runtime_wheels,
    standard_algorithm,
)
from tests.support.signing import (
    issue_signing_cert,
    make_ca,
    make_key,
    rewrite_zip,
    sign_with_cert,
    sign_with_key,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "uv-cache-install"


class Canary:
    """A package whose wheel's .pth file and whose algorithm's import each write a file under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pth = folder / "pth-ran"
        self.imported = folder / "import-ran"

    def left(self) -> list[str]:
        return sorted(p.name for p in (self.pth, self.imported) if p.exists())

    def build(self, dest: Path, *, layout: str = "flat") -> Path:
        wheel = make_wheel(dest / "wheelsrc", "canary-pth", "1.0", files={
            "canary_pth.pth": f"import pathlib; pathlib.Path({str(self.pth)!r}).write_text('pth')\n",
            "canary_pth/__init__.py": ""})
        mf = manifest_for()
        source = (f"import pathlib\npathlib.Path({str(self.imported)!r}).write_text('import')\n"
                  + standard_algorithm(mf["name"], mf["version"], mf["supported_pids"]))
        return build_package(dest, manifest=mf, files={"algo/__init__.py": "", "algo/main.py": source},
                             wheels=[*runtime_wheels(), wheel], layout=layout,
                             requirements="procvision-algorithm-sdk\nnumpy\ncanary-pth\n")


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    folder = tmp_path / "canaries"
    folder.mkdir()
    return Canary(folder)


def _installer(tmp_path: Path, uv_cache: Path, trust_mode: str = "require") -> Installer:
    # Unboxed: the canaries prove a package ran by writing into this test's folder, which a boxed
    # smoke worker cannot see (a rejected package never gets as far as the box anyway).
    settings = Settings(root=tmp_path / "root", uv_cache_dir=uv_cache, trust_mode=trust_mode,  # type: ignore[arg-type]
                        sandbox="off")
    return Installer(settings, Registry(settings.layout))


def _trust(installer: Installer, pem: Path) -> None:
    TrustStore(installer.layout).add(pem.read_bytes())


def _rejected(installer: Installer, zip_path: Path, canary: Canary, code: str) -> RunnerError:
    with pytest.raises(RunnerError) as info:
        installer.install(zip_path)
    error = info.value
    assert error.code == code, error.to_dict()
    assert canary.left() == [], "nothing of a rejected package may run"
    assert root_is_clean(installer.layout.root) == []
    record = installer.registry.get("demo_algo", "1.0.0")
    assert record is not None and record["state"] == "invalid" and record["last_error"]["code"] == code
    return error


def test_signed_by_trusted_key_installs_and_runs(tmp_path: Path, uv_cache: Path, canary: Canary) -> None:
    key = make_key(tmp_path / "keys")
    installer = _installer(tmp_path, uv_cache)
    _trust(installer, key.public)
    zip_path = sign_with_key(canary.build(tmp_path / "pkg"), key)
    result = installer.install(zip_path)
    assert result.state == "installed"
    # The control for every rejection below: this package's code does run once it is admitted.
    assert canary.left() == ["import-ran", "pth-ran"]
    signature = installer.registry.get("demo_algo", "1.0.0")["signature"]  # type: ignore[index]
    assert signature["status"] == "verified" and signature["mode"] == "require"
    assert signature["signer"] == {"kind": "key", "fingerprint": key.fingerprint, "subject": None,
                                   "trusted_by": key.fingerprint}


def test_unsigned_is_rejected(tmp_path: Path, uv_cache: Path, canary: Canary) -> None:
    installer = _installer(tmp_path, uv_cache)
    _trust(installer, make_key(tmp_path / "keys").public)
    error = _rejected(installer, canary.build(tmp_path / "pkg"), canary, "2030")
    assert error.name == "unsigned" and "package.sig" in error.message


@pytest.mark.parametrize("change", ["changed", "added", "removed"])
def test_altered_file_is_rejected_naming_it(tmp_path: Path, uv_cache: Path, canary: Canary, change: str) -> None:
    key = make_key(tmp_path / "keys")
    installer = _installer(tmp_path, uv_cache)
    _trust(installer, key.public)
    signed = sign_with_key(canary.build(tmp_path / "pkg", layout="folder"), key)
    target = tmp_path / "tampered.zip"
    if change == "changed":
        rewrite_zip(signed, target, replace={"demo_algo/algo/__init__.py": b"print('evil')\n"})
        name = "demo_algo/algo/__init__.py"
    elif change == "added":
        rewrite_zip(signed, target, add={"demo_algo/algo/extra.py": b"x = 1\n"})
        name = "demo_algo/algo/extra.py"
    else:
        rewrite_zip(signed, target, drop=("demo_algo/requirements.txt",))
        name = "demo_algo/requirements.txt"
    error = _rejected(installer, target, canary, "2031")
    assert name in error.message and error.details[change] == [name]


def test_unknown_key_is_rejected_naming_its_fingerprint(tmp_path: Path, uv_cache: Path, canary: Canary) -> None:
    trusted, stranger = make_key(tmp_path / "keys", "trusted"), make_key(tmp_path / "keys", "stranger")
    installer = _installer(tmp_path, uv_cache)
    _trust(installer, trusted.public)
    error = _rejected(installer, sign_with_key(canary.build(tmp_path / "pkg"), stranger), canary, "2032")
    assert stranger.fingerprint in error.message and error.details["fingerprint"] == stranger.fingerprint


def test_certificate_of_trusted_ca_installs(tmp_path: Path, uv_cache: Path, canary: Canary) -> None:
    ca = make_ca(tmp_path / "ca")
    key_path, cert_path = issue_signing_cert(ca, tmp_path / "ca")
    installer = _installer(tmp_path, uv_cache)
    _trust(installer, ca.cert_path)
    installer.install(sign_with_cert(canary.build(tmp_path / "pkg", layout="public"), key_path, cert_path, ca))
    signer = installer.registry.get("demo_algo", "1.0.0")["signature"]["signer"]  # type: ignore[index]
    assert signer["kind"] == "certificate" and "CN=Line 3 build server" in signer["subject"]


def test_expired_certificate_is_rejected(tmp_path: Path, uv_cache: Path, canary: Canary) -> None:
    ca = make_ca(tmp_path / "ca")
    now = dt.datetime.now(dt.UTC)
    key_path, cert_path = issue_signing_cert(ca, tmp_path / "ca", not_before=now - dt.timedelta(days=30),
                                             not_after=now - dt.timedelta(days=1))
    installer = _installer(tmp_path, uv_cache)
    _trust(installer, ca.cert_path)
    error = _rejected(installer, sign_with_cert(canary.build(tmp_path / "pkg"), key_path, cert_path, ca),
                      canary, "2033")
    assert "expired" in error.message and "Line 3 build server" in error.message


def test_certificate_of_another_ca_is_rejected(tmp_path: Path, uv_cache: Path, canary: Canary) -> None:
    trusted, other = make_ca(tmp_path / "ca", "Factory Root CA"), make_ca(tmp_path / "other", "Rogue CA")
    key_path, cert_path = issue_signing_cert(other, tmp_path / "other")
    installer = _installer(tmp_path, uv_cache)
    _trust(installer, trusted.cert_path)
    error = _rejected(installer, sign_with_cert(canary.build(tmp_path / "pkg"), key_path, cert_path, other),
                      canary, "2033")
    assert "Rogue CA" in error.message


def _tamper_payload(bundle: dict[str, Any]) -> dict[str, Any]:
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return bundle


@pytest.mark.parametrize("damage", ["not json", "altered envelope"])
def test_malformed_signature_is_rejected(tmp_path: Path, uv_cache: Path, canary: Canary, damage: str) -> None:
    key = make_key(tmp_path / "keys")
    installer = _installer(tmp_path, uv_cache)
    _trust(installer, key.public)
    signed = sign_with_key(canary.build(tmp_path / "pkg"), key)
    import zipfile

    with zipfile.ZipFile(signed) as zf:
        bundle = json.loads(zf.read("package.sig"))
    body = b"{ this is not a bundle" if damage == "not json" else json.dumps(_tamper_payload(bundle)).encode()
    target = rewrite_zip(signed, tmp_path / "bad.zip", replace={"package.sig": body})
    error = _rejected(installer, target, canary, "2034")
    assert "package.sig" in error.message


def test_warn_installs_unsigned_and_marks_it(tmp_path: Path, uv_cache: Path, canary: Canary,
                                             caplog: pytest.LogCaptureFixture) -> None:
    installer = _installer(tmp_path, uv_cache, trust_mode="warn")
    with caplog.at_level("WARNING", logger="runner.trust"):
        installer.install(canary.build(tmp_path / "pkg"))
    signature = installer.registry.get("demo_algo", "1.0.0")["signature"]  # type: ignore[index]
    assert signature["status"] == "unsigned" and signature["mode"] == "warn"
    assert signature["error"]["code"] == "2030"
    assert any("TRUST WARNING" in r.getMessage() and "UNSIGNED" in r.getMessage() for r in caplog.records)


def test_auto_is_warn_without_keys_and_require_with_one(tmp_path: Path, uv_cache: Path) -> None:
    installer = _installer(tmp_path, uv_cache, trust_mode="auto")
    assert installer.trust.mode().name == "warn"
    _trust(installer, make_key(tmp_path / "keys").public)
    assert installer.trust.mode().name == "require"


def test_off_skips_the_check(tmp_path: Path, uv_cache: Path) -> None:
    installer = _installer(tmp_path, uv_cache, trust_mode="off")
    staging = tmp_path / "tree"
    staging.mkdir()
    from runner.package.layout import locate

    assert installer.trust.admit(staging, locate(["manifest.json"])) == {
        "status": "unchecked", "mode": "off", "signer": None, "error": None}


def test_drop_folder_rejection_says_the_same_in_error_json(tmp_path: Path, uv_cache: Path, canary: Canary) -> None:
    import os
    import threading

    from runner.package.watcher import DropFolderWatcher
    from tests.support.waiting import wait_until

    trusted, stranger = make_key(tmp_path / "keys", "trusted"), make_key(tmp_path / "keys", "stranger")
    installer = _installer(tmp_path, uv_cache)
    _trust(installer, trusted.public)
    installer.layout.ensure()
    done = threading.Event()
    watcher = DropFolderWatcher(installer.settings, installer, lambda _path, _outcome: done.set())
    signed = sign_with_key(canary.build(tmp_path / "pkg"), stranger)
    os.rename(signed, installer.layout.zips / "pkg.zip")
    watcher.start()
    try:
        assert done.wait(120), "the watcher did not process the zip"
        error_file = installer.layout.rejected / "pkg.zip.error.json"
        # The outcome callback runs as the rejection is decided; its error file follows right after.
        wait_until(error_file.exists, 30.0, "the rejection's error file")
    finally:
        watcher.stop()
    error = json.loads(error_file.read_text())
    assert error["code"] == "2032" and error["name"] == "unknown_signer"
    assert stranger.fingerprint in error["message"] and error["details"]["fingerprint"] == stranger.fingerprint
    assert canary.left() == []
