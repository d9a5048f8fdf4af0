"""Who signed a package, as verification found it (standard library only: the runner keeps it in its
registry without loading the signing libraries)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Signer:
    """Who signed: ``fingerprint`` of the key or of the signing certificate; ``subject`` for a certificate;
    ``trusted_by`` the fingerprint of the trusted key or CA certificate that vouched for it."""

    kind: str
    fingerprint: str
    subject: str | None
    trusted_by: str

    def describe(self) -> str:
        if self.kind == "certificate":
            return f"certificate {self.subject} (sha256:{self.fingerprint[:16]})"
        return f"key sha256:{self.fingerprint[:16]}"
