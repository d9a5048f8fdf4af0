"""``procvision-cli keygen``, ``sign``, ``verify`` and ``package --sign-key`` on real zips with real keys."""

from __future__ import annotations

import io
import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from procvision_algorithm_sdk.cli.main import main
from tests.support import wheels as wheel_cache
from tests.support.packages import build_package
from tests.support.signing import issue_signing_cert, make_ca, rewrite_zip

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example-algorithm"


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def keygen(folder: Path, name: str = "dev.key") -> tuple[Path, Path, str]:
    code, out, err = cli("keygen", str(folder / name))
    assert code == 0, err
    return folder / name, folder / f"{name}.pub", out.strip().removeprefix("sha256:")


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    private, public, fingerprint = keygen(tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----") and len(fingerprint) == 64
    code, _out, err = cli("keygen", str(private))
    assert code == 1 and "never overwritten" in err


def test_sign_then_verify_and_every_failure_has_its_reason(tmp_path: Path) -> None:
    private, public, fingerprint = keygen(tmp_path)
    zip_path = build_package(tmp_path / "pkg", layout="folder", wheels=[])
    code, out, err = cli("sign", str(zip_path), "--key", str(private))
    assert code == 0, err
    with zipfile.ZipFile(zip_path) as zf:
        assert "demo_algo/package.sig" in zf.namelist()
        bundle = json.loads(zf.read("demo_algo/package.sig"))
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"]["publicKey"]["hint"] == fingerprint
    code, out, _err = cli("verify", str(zip_path), "--key", str(public))
    assert code == 0 and f"key sha256:{fingerprint[:16]}" in out

    _other, other_public, other_fp = keygen(tmp_path, "other.key")
    code, _out, err = cli("verify", str(zip_path), "--key", str(other_public))
    assert code == 1 and "unknown_signer" in err and fingerprint in err and other_fp not in err

    tampered = rewrite_zip(zip_path, tmp_path / "t.zip", replace={"demo_algo/algo/main.py": b"evil = 1\n"})
    code, _out, err = cli("verify", str(tampered), "--key", str(public))
    assert code == 1 and "signature_mismatch" in err and "demo_algo/algo/main.py" in err

    unsigned = rewrite_zip(zip_path, tmp_path / "u.zip", drop=("demo_algo/package.sig",))
    code, _out, err = cli("verify", str(unsigned), "--key", str(public))
    assert code == 1 and "unsigned" in err


def test_resigning_replaces_the_signature_and_output_leaves_the_source(tmp_path: Path) -> None:
    first, _pub1, _fp1 = keygen(tmp_path, "first.key")
    second, pub2, fp2 = keygen(tmp_path, "second.key")
    zip_path = build_package(tmp_path / "pkg", wheels=[])
    assert cli("sign", str(zip_path), "--key", str(first))[0] == 0
    original = zip_path.read_bytes()
    out_zip = tmp_path / "resigned.zip"
    code, out, err = cli("sign", str(zip_path), "--key", str(second), "-o", str(out_zip))
    assert code == 0, err
    assert zip_path.read_bytes() == original
    with zipfile.ZipFile(out_zip) as zf:
        assert zf.namelist().count("package.sig") == 1
    code, out, _err = cli("verify", str(out_zip), "--key", str(pub2))
    assert code == 0 and fp2[:16] in out


def test_certificate_mode_verifies_against_the_ca(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca")
    key_path, cert_path = issue_signing_cert(ca, tmp_path / "ca")
    zip_path = build_package(tmp_path / "pkg", layout="public", wheels=[])
    code, _out, err = cli("sign", str(zip_path), "--key", str(key_path), "--cert", str(cert_path),
                          "--chain", str(ca.cert_path))
    assert code == 0, err
    code, out, err = cli("verify", str(zip_path), "--ca", str(ca.cert_path))
    assert code == 0 and "Line 3 build server" in out, err
    rogue = make_ca(tmp_path / "rogue", "Rogue CA")
    code, _out, err = cli("verify", str(zip_path), "--ca", str(rogue.cert_path))
    assert code == 1 and "certificate_invalid" in err


def test_usage_errors(tmp_path: Path) -> None:
    assert cli("sign", str(tmp_path / "missing.zip"), "--key", "k")[0] == 2
    zip_path = build_package(tmp_path / "pkg", wheels=[])
    code, _out, err = cli("sign", str(zip_path), "--key", str(tmp_path / "nokey"))
    assert code == 2 and "nokey" in err
    code, _out, err = cli("verify", str(zip_path))
    assert code == 2 and "--key" in err


@pytest.mark.slow
def test_package_sign_key_builds_a_signed_zip(tmp_path: Path) -> None:
    private, public, fingerprint = keygen(tmp_path)
    project = tmp_path / "proj"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "dist"))
    code, out, err = cli("package", str(project), "-o", str(tmp_path / "out"), "--offline", "--wheels-from",
                         str(wheel_cache.ensure()), "--sign-key", str(private))
    assert code == 0, err
    zip_path = Path(out.strip())
    with zipfile.ZipFile(zip_path) as zf:
        assert "package.sig" in zf.namelist()
    code, out, _err = cli("verify", str(zip_path), "--key", str(public))
    assert code == 0 and fingerprint[:16] in out
    code, _out, err = cli("package", str(project), "-o", str(tmp_path / "out2"), "--offline",
                          "--sign-key", str(tmp_path / "absent.key"))
    assert code == 2 and "absent.key" in err and not (tmp_path / "out2").exists()
