"""Verify an extracted package tree against the trust store; failures become RunnerErrors with trust codes.

The cryptography lives in the SDK (``procvision_algorithm_sdk.signing``, the same code that signs);
this module only maps its reasons to the runner's codes and says what the record keeps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk.signing.signer import Signer

from ..errors import PackageErrorCode, RunnerError
from .store import TrustStore

#: SDK reason -> runner code.
CODES: dict[str, PackageErrorCode] = {
    "unsigned": PackageErrorCode.UNSIGNED,
    "signature_mismatch": PackageErrorCode.SIGNATURE_MISMATCH,
    "unknown_signer": PackageErrorCode.UNKNOWN_SIGNER,
    "certificate_invalid": PackageErrorCode.CERTIFICATE_INVALID,
    "signature_malformed": PackageErrorCode.SIGNATURE_MALFORMED,
}

VERIFIED = "verified"
UNSIGNED = "unsigned"  # no signature (warn mode let it in)
UNVERIFIED = "unverified"  # a signature that failed its check (warn mode let it in)
UNCHECKED = "unchecked"  # trust_mode off: nobody looked


@dataclass(frozen=True)
class SignatureRecord:
    """What the registry keeps about a version's signature (field ``signature``)."""

    status: str
    mode: str
    signer: Signer | None = None
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_package(tree: Path, signature_rel: str, store: TrustStore) -> Signer:
    """Verify the package extracted at ``tree`` (its signature at ``signature_rel``).

    Raises RunnerError 2030-2034 naming the file or key fingerprint; nothing of the package is run."""
    from procvision_algorithm_sdk.signing.errors import SignatureError, SigningUnavailable
    from procvision_algorithm_sdk.signing.verify import verify_tree

    try:
        signer = verify_tree(tree, signature_rel, store.keys(), store.cas())
    except SignatureError as exc:
        code = CODES.get(exc.reason, PackageErrorCode.SIGNATURE_MALFORMED)
        raise RunnerError(code, exc.message, check="signature", **exc.details) from exc
    except SigningUnavailable as exc:
        raise RunnerError(PackageErrorCode.INSTALL_FAILED, f"cannot verify signatures: {exc}",
                          check="signature") from exc
    return signer


def signer_trusted(signature: dict[str, Any] | None, store: TrustStore) -> bool:
    """True when a record's signature was verified and the key or CA that vouched for it is still trusted."""
    if not isinstance(signature, dict) or signature.get("status") != VERIFIED:
        return False
    signer = signature.get("signer")
    return isinstance(signer, dict) and signer.get("trusted_by") in store.fingerprints()
