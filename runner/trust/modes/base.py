"""What every trust mode decides: whether a package may be installed, and whether a version may serve."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from ..store import TrustStore
from ..verify import SignatureRecord


class TrustMode(ABC):
    """One trust mode. ``admit`` runs on the extracted package before anything of it runs; it returns
    what the registry keeps or raises the RunnerError that rejects the package. ``check_activation``
    runs before a version is activated or switched to."""

    name: ClassVar[str]

    def __init__(self, store: TrustStore) -> None:
        self.store = store

    @abstractmethod
    def admit(self, tree: Path, signature_rel: str) -> SignatureRecord:
        """Verify (or not) the package at ``tree``; raise to reject it."""

    @abstractmethod
    def check_activation(self, name: str, version: str, signature: dict[str, Any] | None) -> None:
        """Raise to refuse serving ``name`` ``version`` whose record holds ``signature``."""
