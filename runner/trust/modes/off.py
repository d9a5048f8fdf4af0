"""off: no signature is checked; versions are recorded as unchecked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..verify import UNCHECKED, SignatureRecord
from .base import TrustMode


class OffMode(TrustMode):
    """Nothing is verified and nothing is refused."""

    name = "off"

    def admit(self, tree: Path, signature_rel: str) -> SignatureRecord:
        return SignatureRecord(UNCHECKED, self.name)

    def check_activation(self, name: str, version: str, signature: dict[str, Any] | None) -> None:
        return None
