"""The trust store: public keys and CA certificates in ``<root>/trust/`` that packages may be signed with.

Each entry is one PEM file (``<name>.pem``): an EC public key (key-pair mode) or a CA certificate
(certificate mode). Operators add and remove them with ``procvision-runner trust`` or the API, or drop
PEM files in by hand. A file anyone but its owner may write is ignored (and listed with the reason):
whoever can write to the store decides what runs. The folder is 0750, files 0640.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import PackageErrorCode, RunnerError
from ..store.atomic import fsync_dir, write_bytes_atomic
from ..store.layout import RootLayout

log = logging.getLogger(__name__)

SUFFIXES = (".pem", ".pub", ".crt")
DIR_MODE = 0o750
FILE_MODE = 0o640
MAX_PEM_BYTES = 256 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class TrustEntry:
    """One file of the store. ``kind`` is "key" or "ca"; ``problem`` says why an entry is not used."""

    name: str
    kind: str
    fingerprint: str
    path: str
    subject: str | None = None
    not_after: str | None = None
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse(data: bytes) -> tuple[str, str, str | None, str | None]:
    """(kind, fingerprint, subject, not_after) of a PEM public key or certificate; ValueError otherwise."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from procvision_algorithm_sdk.signing.keys import certificate_fingerprint, key_fingerprint

    if b"PRIVATE KEY" in data:
        raise ValueError("this is a private key: trust its public key (the .pub file keygen wrote) instead, "
                         "and keep the private key off the station")
    if b"BEGIN CERTIFICATE" in data:
        cert = x509.load_pem_x509_certificate(data)
        basic = None
        with contextlib.suppress(x509.ExtensionNotFound):
            basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if basic is None or not basic.ca:
            raise ValueError(f"the certificate {cert.subject.rfc4514_string()} is not a CA certificate "
                             "(basicConstraints CA:TRUE); trust the CA that issues signing certificates")
        return ("ca", certificate_fingerprint(cert), cert.subject.rfc4514_string(),
                cert.not_valid_after_utc.isoformat())
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"not a PEM public key or CA certificate: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("only elliptic-curve public keys (P-256, P-384, P-521) can sign packages")
    return "key", key_fingerprint(key), None, None


class TrustStore:
    """The trusted keys and CA certificates of one runtime root (re-read on every call: no cache to go stale)."""

    def __init__(self, layout: RootLayout) -> None:
        self.folder = layout.trust

    def entries(self) -> list[TrustEntry]:
        """Every PEM file of the store, usable or not (``problem`` says why not), by name."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(".") or path.suffix not in SUFFIXES:
                continue
            found.append(self._entry(path))
        return found

    def _entry(self, path: Path) -> TrustEntry:
        name = path.stem
        try:
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                return TrustEntry(name, "unknown", "", str(path), problem="not a regular file")
            if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return TrustEntry(name, "unknown", "", str(path),
                                  problem=f"writable by group or others (mode {stat.S_IMODE(info.st_mode):o}); "
                                          f"chmod {FILE_MODE:o} it to trust it")
            if info.st_size > MAX_PEM_BYTES:
                return TrustEntry(name, "unknown", "", str(path), problem="larger than a PEM key or certificate")
            kind, fingerprint, subject, not_after = _parse(path.read_bytes())
        except (OSError, ValueError) as exc:
            return TrustEntry(name, "unknown", "", str(path), problem=str(exc))
        return TrustEntry(name, kind, fingerprint, str(path), subject, not_after)

    def usable(self) -> list[TrustEntry]:
        return [e for e in self.entries() if e.usable]

    def keys(self) -> dict[str, Path]:
        """Trusted key fingerprint -> PEM file."""
        return {e.fingerprint: Path(e.path) for e in self.usable() if e.kind == "key"}

    def cas(self) -> list[Path]:
        """PEM files of the trusted CA certificates."""
        return [Path(e.path) for e in self.usable() if e.kind == "ca"]

    def fingerprints(self) -> set[str]:
        return {e.fingerprint for e in self.usable()}

    def has_any(self) -> bool:
        """True when the store holds at least one usable key or CA certificate."""
        return bool(self.usable())

    def add(self, data: bytes, name: str | None = None) -> TrustEntry:
        """Trust the PEM public key or CA certificate in ``data``; idempotent for one already trusted.

        RunnerError 2013 (invalid_request) for anything else, or for a name taken by another entry."""
        if len(data) > MAX_PEM_BYTES:
            raise RunnerError(PackageErrorCode.INVALID_REQUEST, "that is not a PEM key or certificate (too large)")
        try:
            kind, fingerprint, _subject, _after = _parse(data)
        except ValueError as exc:
            raise RunnerError(PackageErrorCode.INVALID_REQUEST, f"cannot trust it: {exc}") from exc
        for entry in self.usable():
            if entry.fingerprint == fingerprint:
                return entry
        name = name or f"{kind}-{fingerprint[:16]}"
        if not _NAME.fullmatch(name):
            raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                              f"trust entry name {name!r} must be 1-64 letters, digits, '.', '_' or '-'", name=name)
        path = self.folder / f"{name}.pem"
        if path.exists():
            raise RunnerError(PackageErrorCode.INVALID_REQUEST,
                              f"{path} exists and holds another key; choose another --name", name=name)
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, DIR_MODE)
        write_bytes_atomic(path, data, FILE_MODE)
        log.warning("trust: added %s %s sha256:%s", kind, name, fingerprint)
        return self._entry(path)

    def find(self, ident: str) -> TrustEntry:
        """The entry named ``ident``, or whose fingerprint is (or starts with, 8+ hex digits) ``ident``."""
        ident = ident.removeprefix("sha256:").strip()
        entries = self.entries()
        matches = [e for e in entries if e.name == ident]
        if not matches and len(ident) >= 8:
            matches = [e for e in entries if e.fingerprint and e.fingerprint.startswith(ident.lower())]
        if not matches:
            raise RunnerError(PackageErrorCode.NOT_FOUND, f"no trusted key or CA certificate is named or "
                              f"fingerprinted {ident!r}; see `procvision-runner trust list`", ident=ident)
        if len(matches) > 1:
            raise RunnerError(PackageErrorCode.INVALID_REQUEST, f"{ident!r} matches several entries "
                              f"({', '.join(e.name for e in matches)}); give more of the fingerprint", ident=ident)
        return matches[0]

    def remove(self, ident: str) -> TrustEntry:
        """Stop trusting an entry (its file is deleted). Installed versions stay installed."""
        entry = self.find(ident)
        Path(entry.path).unlink(missing_ok=True)
        fsync_dir(self.folder)
        log.warning("trust: removed %s %s sha256:%s", entry.kind, entry.name, entry.fingerprint)
        return entry

