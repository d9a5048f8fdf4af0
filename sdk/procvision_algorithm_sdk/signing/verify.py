"""Checking a signed package tree against trusted keys and CA certificates, offline.

The order matters for the messages: first who signed (unknown key, bad certificate), then whether the
envelope verifies, then whether the files are the signed ones. Each failure is its own exception class
(see ``errors``), naming the key fingerprint or the files at fault.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .bundle import SignedBundle, read_bundle, signature_member
from .errors import (
    CertificateInvalid,
    SignatureMalformed,
    SignatureMismatch,
    UnknownSigner,
    require_signing_libraries,
)
from .keys import certificate_fingerprint, key_fingerprint, load_public_key
from .signer import Signer
from .tree import file_digests, hashing_config, unpack


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.timezone.utc)


def _check_validity(cert: Any, what: str, now: dt.datetime) -> None:
    subject = cert.subject.rfc4514_string()
    fp = certificate_fingerprint(cert)
    if cert.not_valid_after_utc < now:
        raise CertificateInvalid(f"the {what} {subject} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; "
                                 "sign again with a valid certificate", subject=subject, fingerprint=fp)
    if cert.not_valid_before_utc > now:
        raise CertificateInvalid(f"the {what} {subject} is not valid before "
                                 f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC", subject=subject, fingerprint=fp)


def _issued_by(cert: Any, ca: Any) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _certificate_signer(bundle: SignedBundle, cas: Sequence[Path], now: dt.datetime) -> tuple[Signer, Any]:
    from cryptography import x509

    try:
        chain = [x509.load_der_x509_certificate(raw) for raw in bundle.certificates]
        trusted = [c for path in cas for c in x509.load_pem_x509_certificates(path.read_bytes())]
    except ValueError as exc:
        raise SignatureMalformed(f"a certificate in the signature cannot be read: {exc}") from None
    leaf = chain[0]
    subject = leaf.subject.rfc4514_string()
    leaf_fp = certificate_fingerprint(leaf)
    for index, cert in enumerate(chain):
        _check_validity(cert, "signing certificate" if index == 0 else "intermediate certificate", now)
    by_fp = {certificate_fingerprint(c): c for c in trusted}
    anchor = None
    top = chain[-1]
    if certificate_fingerprint(top) in by_fp:
        anchor = by_fp[certificate_fingerprint(top)]
    else:
        anchor = next((ca for ca in trusted if _issued_by(top, ca)), None)
    if anchor is None:
        raise CertificateInvalid(f"the signing certificate {subject} does not chain to a trusted CA (issuer "
                                 f"{top.issuer.rfc4514_string()}); trust that CA or sign with a certificate of a "
                                 "trusted CA", subject=subject, fingerprint=leaf_fp,
                                 issuer=top.issuer.rfc4514_string())
    _check_validity(anchor, "CA certificate", now)
    from model_signing import verifying

    config = verifying.Config().use_certificate_verifier(certificate_chain=list(cas))
    return Signer("certificate", leaf_fp, subject, certificate_fingerprint(anchor)), config


def _key_signer(bundle: SignedBundle, keys: Mapping[str, Path]) -> tuple[Signer, Any]:
    from model_signing import verifying

    if bundle.key_hint is None:
        raise SignatureMalformed("the signature does not name its key (no key hint); sign it again with "
                                 "`procvision-cli sign`")
    path = keys.get(bundle.key_hint)
    if path is None:
        raise UnknownSigner(f"signed by key sha256:{bundle.key_hint}, which is not trusted; add its public key to "
                            "the trust store (`procvision-runner trust add KEY.pub`) if you trust its holder",
                            fingerprint=bundle.key_hint)
    config = verifying.Config().use_elliptic_key_verifier(public_key=path)
    return Signer("key", bundle.key_hint, None, bundle.key_hint), config


def _mismatch(tree: Path, signature_rel: str, bundle: SignedBundle) -> SignatureMismatch:
    actual = file_digests(tree, signature_rel)
    expected = bundle.resources
    changed = sorted(n for n in actual.keys() & expected.keys() if actual[n] != expected[n])
    added = sorted(actual.keys() - expected.keys())
    removed = sorted(expected.keys() - actual.keys())
    parts = [f"{label}: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}"
             for label, names in (("changed", changed), ("added", added), ("removed", removed)) if names]
    first = (changed + added + removed or ["?"])[0]
    return SignatureMismatch(f"the package differs from what was signed ({'; '.join(parts)}); rebuild and "
                             "sign it again, or find out who altered it", file=first, changed=changed,
                             added=added, removed=removed)


def verify_tree(tree: Path, signature_rel: str, keys: Mapping[str, Path], cas: Sequence[Path] = (),
                now: dt.datetime | None = None) -> Signer:
    """Verify ``tree`` against its signature ``tree/signature_rel``.

    ``keys`` maps trusted key fingerprints to their PEM files; ``cas`` are trusted CA certificate PEMs.
    Returns the Signer; raises a SignatureError subclass (Unsigned, UnknownSigner, CertificateInvalid,
    SignatureMalformed, SignatureMismatch)."""
    bundle = read_bundle(tree / signature_rel, signature_rel)
    extra = sorted(set(bundle.ignore_paths) - {signature_rel})
    if extra:
        raise SignatureMalformed(f"the signature leaves files unsigned ({', '.join(extra)}); sign the package "
                                 "with `procvision-cli sign`, which covers every file", file=extra[0])
    require_signing_libraries()
    from cryptography.exceptions import InvalidSignature
    from OpenSSL.crypto import X509StoreContextError

    if bundle.kind == "certificate":
        signer, config = _certificate_signer(bundle, cas, _now(now))
    else:
        signer, config = _key_signer(bundle, keys)
    config.set_hashing_config(hashing_config(signature_rel))
    try:
        config.verify(tree, tree / signature_rel)
    except InvalidSignature:
        raise SignatureMalformed(f"{signature_rel} does not verify with {signer.describe()}: the signature was "
                                 "altered after signing", file=signature_rel, fingerprint=signer.fingerprint) from None
    except X509StoreContextError as exc:
        raise CertificateInvalid(f"the certificate chain of {signer.subject} does not verify: {exc}",
                                 subject=signer.subject, fingerprint=signer.fingerprint) from None
    except ValueError as exc:
        if str(exc).startswith("Signature mismatch"):
            raise _mismatch(tree, signature_rel, bundle) from None
        if "cannot be used for signing" in str(exc):
            raise CertificateInvalid(f"the certificate {signer.subject} is not for code signing (no digitalSignature "
                                     "key usage or codeSigning extended usage)", subject=signer.subject,
                                     fingerprint=signer.fingerprint) from None
        raise SignatureMalformed(f"{signature_rel} cannot be verified: {exc}", file=signature_rel) from None
    except (KeyError, TypeError) as exc:
        raise SignatureMalformed(f"{signature_rel} cannot be verified: {exc!r}", file=signature_rel) from None
    return signer


def trusted_keys(paths: Sequence[Path]) -> dict[str, Path]:
    """``{fingerprint: path}`` of public key PEM files (private key files count by their public half)."""
    return {key_fingerprint(load_public_key(p)): p for p in paths}


def verify_zip(zip_path: Path, keys: Sequence[Path] = (), cas: Sequence[Path] = (),
               now: dt.datetime | None = None) -> Signer:
    """Unpack ``zip_path`` into a temporary folder and verify it like the runner does."""
    with tempfile.TemporaryDirectory(prefix="procvision-verify-") as tmp:
        tree = Path(tmp) / "package"
        tree.mkdir()
        with zipfile.ZipFile(zip_path) as zf:
            member = signature_member(zf.namelist())
            unpack(zf, tree)
        require_signing_libraries()
        return verify_tree(tree, member, trusted_keys(list(keys)), list(cas), now)


__all__: list[str] = ["Signer", "verify_tree", "verify_zip", "trusted_keys"]
