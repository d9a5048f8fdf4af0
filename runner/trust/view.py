"""How a version's signature is shown in ``list``/``show``, the API and metrics: who signed it, and whether
that signer is still trusted (removing a key uninstalls nothing, but its versions are flagged)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..store.version_record import VersionRecord
from .store import TrustStore
from .verify import VERIFIED, signer_trusted


def signer_label(signature: dict[str, Any] | None) -> str:
    """"key sha256:<16 hex>", the certificate subject, or the status (unsigned, unverified, unchecked)."""
    if not isinstance(signature, dict):
        return "unknown"
    signer = signature.get("signer")
    if signature.get("status") == VERIFIED and isinstance(signer, dict):
        if signer.get("kind") == "certificate":
            return str(signer.get("subject"))
        return f"key sha256:{str(signer.get('fingerprint'))[:16]}"
    return str(signature.get("status") or "unknown")


def annotate(record: dict[str, Any], store: TrustStore) -> dict[str, Any]:
    """``record`` plus ``signer`` (a label) and ``signer_trusted`` (the signer is in the store now)."""
    signature = record.get("signature")
    return {**record, "signer": signer_label(signature), "signer_trusted": signer_trusted(signature, store)}


def metric_lines(records: Sequence[VersionRecord], store: TrustStore) -> list[str]:
    """Prometheus lines: trusted entries by kind, and per version whether its signer is trusted."""
    from ..metrics import _labels

    entries = store.usable()
    out = ["# HELP procvision_trusted_signers Keys and CA certificates in the trust store.",
           "# TYPE procvision_trusted_signers gauge"]
    for kind in ("key", "ca"):
        out.append(f"procvision_trusted_signers{_labels((('kind', kind),))} {sum(e.kind == kind for e in entries)}")
    out += ["# HELP procvision_version_signer_trusted 1 when the version's signer is in the trust store now.",
            "# TYPE procvision_version_signer_trusted gauge"]
    for record in records:
        if record.invalid:
            continue
        labels = (("name", record.name), ("version", record.version), ("signer", signer_label(record.signature)))
        out.append(f"procvision_version_signer_trusted{_labels(labels)} "
                   f"{int(signer_trusted(record.signature, store))}")
    return out
