"""Reading a ``package.sig`` bundle with the standard library only: who claims to have signed it, and
the file list it claims. Nothing read here is trusted until ``verify`` has checked the envelope.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SignatureMalformed, Unsigned

SIGNATURE_FILE = "package.sig"
MANIFEST = "manifest.json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: Largest signature file read: a bundle lists one digest per file, far below this for any package.
MAX_SIGNATURE_BYTES = 16 * 1024 * 1024


def signature_member(names: Sequence[str]) -> str:
    """Archive path of the signature: beside ``manifest.json`` (the archive root, or its one top folder)."""
    files = {n for n in names if not n.endswith("/")}
    if MANIFEST in files:
        return SIGNATURE_FILE
    tops = sorted(n.split("/", 1)[0] for n in files if n.count("/") == 1 and n.endswith("/" + MANIFEST)
                  and not n.startswith("__MACOSX/"))
    if len(tops) != 1:
        raise ValueError("no single manifest.json at the archive root or in one top folder: not a package zip")
    return f"{tops[0]}/{SIGNATURE_FILE}"


@dataclass(frozen=True)
class SignedBundle:
    """What a bundle claims. ``kind`` is "key" or "certificate"; ``certificates`` are DER, signer first."""

    kind: str
    key_hint: str | None
    certificates: tuple[bytes, ...]
    ignore_paths: tuple[str, ...]
    method: str
    resources: dict[str, str] = field(default_factory=dict)


def _b64(value: Any, what: str, where: str) -> bytes:
    if not isinstance(value, str):
        raise SignatureMalformed(f"{where}: {what} is missing", file=where)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureMalformed(f"{where}: {what} is not base64 ({exc})", file=where) from None


def read_bundle(path: Path, where: str = SIGNATURE_FILE) -> SignedBundle:
    """Parse the bundle at ``path`` (``where`` is its name in messages). Unsigned if it does not exist,
    SignatureMalformed naming the field if it is not a model-signing bundle."""
    try:
        if path.is_symlink() or not path.is_file():
            raise Unsigned(f"the package has no signature: {where} is missing; sign it with "
                           "`procvision-cli sign ZIP --key KEY`", file=where)
        if path.stat().st_size > MAX_SIGNATURE_BYTES:
            raise SignatureMalformed(f"{where} is larger than {MAX_SIGNATURE_BYTES} bytes", file=where)
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SignatureMalformed(f"{where} is not a JSON signature bundle: {exc}", file=where) from None
    if not isinstance(doc, dict):
        raise SignatureMalformed(f"{where} must hold a JSON object", file=where)
    if doc.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise SignatureMalformed(f"{where}: mediaType is {doc.get('mediaType')!r}, expected {BUNDLE_MEDIA_TYPE}",
                                 file=where)
    material = doc.get("verificationMaterial")
    envelope = doc.get("dsseEnvelope")
    if not isinstance(material, dict) or not isinstance(envelope, dict):
        raise SignatureMalformed(f"{where}: verificationMaterial or dsseEnvelope is missing", file=where)
    if envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
        raise SignatureMalformed(f"{where}: payloadType is {envelope.get('payloadType')!r}, expected "
                                 f"{IN_TOTO_PAYLOAD_TYPE}", file=where)
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise SignatureMalformed(f"{where}: the envelope must carry exactly one signature", file=where)
    _b64(signatures[0].get("sig"), "the envelope signature", where)
    certificates: list[bytes] = []
    key_hint: str | None = None
    if isinstance(material.get("x509CertificateChain"), dict):
        kind = "certificate"
        entries = material["x509CertificateChain"].get("certificates")
        if not isinstance(entries, list) or not entries:
            raise SignatureMalformed(f"{where}: the certificate chain is empty", file=where)
        certificates = [_b64(e.get("rawBytes") if isinstance(e, dict) else None, "a certificate", where)
                        for e in entries]
    elif isinstance(material.get("publicKey"), dict):
        kind = "key"
        hint = material["publicKey"].get("hint")
        key_hint = hint if isinstance(hint, str) and hint else None
    else:
        raise SignatureMalformed(f"{where}: verificationMaterial names neither a public key nor a certificate "
                                 "chain (Sigstore keyless bundles need the network and are not accepted)",
                                 file=where)
    payload = _b64(envelope.get("payload"), "the envelope payload", where)
    return _with_statement(kind, key_hint, tuple(certificates), payload, where)


def _with_statement(kind: str, key_hint: str | None, certificates: tuple[bytes, ...], payload: bytes,
                    where: str) -> SignedBundle:
    try:
        statement = json.loads(payload.decode("utf-8"))
        predicate = statement["predicate"]
        serialization = predicate["serialization"]
        resources = {str(r["name"]): str(r["digest"]) for r in predicate.get("resources", [])}
        ignore = tuple(str(p) for p in serialization.get("ignore_paths", []))
        method = str(serialization["method"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise SignatureMalformed(f"{where}: the signed statement is not a model-signing manifest ({exc!r})",
                                 file=where) from None
    return SignedBundle(kind=kind, key_hint=key_hint, certificates=certificates, ignore_paths=ignore,
                        method=method, resources=resources)
