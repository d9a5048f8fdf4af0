"""Elliptic-curve key pairs and the fingerprints that name keys and certificates.

A key's fingerprint is the SHA-256 of its SubjectPublicKeyInfo PEM: the same value ``model-signing``
writes as the bundle's key hint, so a signature names its key without carrying it. A certificate's
fingerprint is the usual SHA-256 of its DER bytes. Needs ``cryptography`` (the ``sign`` extra).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Curves model-signing accepts.
CURVES = ("secp256r1", "secp384r1", "secp521r1")


def _serialization() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization


def public_pem(public_key: Any) -> bytes:
    """SubjectPublicKeyInfo PEM of a public key object."""
    s = _serialization()
    return bytes(public_key.public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))


def key_fingerprint(public_key: Any) -> str:
    """Hex SHA-256 of the key's PEM (the bundle's key hint)."""
    return hashlib.sha256(public_pem(public_key)).hexdigest()


def certificate_fingerprint(certificate: Any) -> str:
    """Hex SHA-256 of the certificate's DER bytes."""
    s = _serialization()
    return hashlib.sha256(certificate.public_bytes(s.Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class KeyPair:
    """Where ``generate_key_pair`` wrote the keys, and the public key's fingerprint."""

    private_key: Path
    public_key: Path
    fingerprint: str


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def generate_key_pair(private_path: Path, public_path: Path | None = None, curve: str = "secp256r1") -> KeyPair:
    """Write a new EC private key (PEM, mode 0600) and its public key (PEM, ``<private>.pub`` by default).

    Never overwrites: FileExistsError if either file exists."""
    from cryptography.hazmat.primitives.asymmetric import ec

    if curve not in CURVES:
        raise ValueError(f"curve must be one of {', '.join(CURVES)}")
    public_path = public_path or private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; keys are never overwritten (choose another path)")
    s = _serialization()
    key = ec.generate_private_key(getattr(ec, curve.upper())())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    _write(private_path, key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()), 0o600)
    _write(public_path, public_pem(key.public_key()), 0o644)
    return KeyPair(private_path, public_path, key_fingerprint(key.public_key()))


def load_public_key(path: Path) -> Any:
    """The public key in a PEM file: a public key, or the public half of a private key. ValueError if neither."""
    s = _serialization()
    data = path.read_bytes()
    try:
        return s.load_pem_public_key(data)
    except ValueError:
        pass
    try:
        return s.load_pem_private_key(data, None).public_key()
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} holds no PEM public or unencrypted private key: {exc}") from None
