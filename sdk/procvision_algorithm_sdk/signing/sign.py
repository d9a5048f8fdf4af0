"""Signing a package zip (or an unpacked package tree) with a key, or with a CA-issued certificate."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .bundle import signature_member
from .errors import require_signing_libraries
from .tree import hashing_config, rewrite_with, unpack


@dataclass(frozen=True)
class SigningKey:
    """A private key PEM, plus the certificate (and chain up to the CA) in certificate mode."""

    private_key: Path
    certificate: Path | None = None
    chain: Sequence[Path] = ()


def sign_tree(tree: Path, signature_rel: str, key: SigningKey) -> Path:
    """Sign every file under ``tree`` except ``signature_rel``; writes and returns ``tree/signature_rel``."""
    require_signing_libraries()
    from model_signing import signing

    config = signing.Config().set_hashing_config(hashing_config(signature_rel))
    if key.certificate is not None:
        config.use_certificate_signer(private_key=key.private_key, signing_certificate=key.certificate,
                                      certificate_chain=list(key.chain))
    else:
        config.use_elliptic_key_signer(private_key=key.private_key)
    target = tree / signature_rel
    if target.exists():
        target.unlink()
    config.sign(tree, target)
    return target


def sign_zip(zip_path: Path, key: SigningKey, output: Path | None = None) -> Path:
    """Add (or replace) the signature of a package zip; writes ``output`` (default: in place)."""
    output = output or zip_path
    with tempfile.TemporaryDirectory(prefix="procvision-sign-") as tmp:
        tree = Path(tmp) / "package"
        tree.mkdir()
        with zipfile.ZipFile(zip_path) as zf:
            member = signature_member(zf.namelist())
            unpack(zf, tree)
        stale = tree / member
        if stale.exists():
            stale.unlink()
        signature = sign_tree(tree, member, key)
        rewrite_with(zip_path, member, signature.read_bytes(), output)
    return output
