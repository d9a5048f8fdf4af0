"""warn: a package that fails its signature check still installs, marked unsigned/unverified, loudly."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ...errors import PackageErrorCode, RunnerError
from ..verify import UNSIGNED, UNVERIFIED, VERIFIED, SignatureRecord, signer_trusted, verify_package
from .base import TrustMode

log = logging.getLogger("runner.trust")


class WarnMode(TrustMode):
    """Verify, and on failure log a warning and record why instead of rejecting."""

    name = "warn"

    def admit(self, tree: Path, signature_rel: str) -> SignatureRecord:
        try:
            signer = verify_package(tree, signature_rel, self.store)
        except RunnerError as exc:
            status = UNSIGNED if exc.code == PackageErrorCode.UNSIGNED.value else UNVERIFIED
            log.warning("TRUST WARNING: installing a package whose signature is %s (trust_mode warn): [%s %s] %s; "
                        "under trust_mode require it would be rejected", status.upper(), exc.code, exc.name,
                        exc.message)
            return SignatureRecord(status, self.name, None, exc.to_dict())
        return SignatureRecord(VERIFIED, self.name, signer)

    def check_activation(self, name: str, version: str, signature: dict[str, Any] | None) -> None:
        if not signer_trusted(signature, self.store):
            log.warning("TRUST WARNING: activating %s %s, which is not signed by a trusted key (%s)", name, version,
                        (signature or {}).get("status") or "no signature record")
