"""require: only packages signed by a trusted key or CA install, and only such versions are activated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import PackageErrorCode, RunnerError
from ..verify import VERIFIED, SignatureRecord, signer_trusted, verify_package
from .base import TrustMode


class RequireMode(TrustMode):
    """Every failed check rejects the package; activating an untrusted version is refused (2035)."""

    name = "require"

    def admit(self, tree: Path, signature_rel: str) -> SignatureRecord:
        signer = verify_package(tree, signature_rel, self.store)
        return SignatureRecord(VERIFIED, self.name, signer)

    def check_activation(self, name: str, version: str, signature: dict[str, Any] | None) -> None:
        if signer_trusted(signature, self.store):
            return
        status = (signature or {}).get("status") or "unknown"
        signer = (signature or {}).get("signer") or {}
        who = signer.get("subject") or (f"key sha256:{signer['fingerprint']}" if signer.get("fingerprint") else None)
        reason = (f"its signer {who} is no longer in the trust store" if status == VERIFIED and who
                  else f"its signature is {status}")
        raise RunnerError(PackageErrorCode.SIGNER_NOT_TRUSTED,
                          f"{name} {version} cannot serve under trust_mode require: {reason}; trust its signer "
                          "again (`procvision-runner trust add`) or install a version signed by a trusted key",
                          name=name, version=version, signature=signature)
