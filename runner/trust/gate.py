"""What the installer and the activation path call: verify a staged package, check a version may serve."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from procvision_algorithm_sdk.signing.bundle import SIGNATURE_FILE

from ..config import Settings
from ..package.layout import PackageLayout
from ..store.version_record import VersionRecord
from .modes import TrustMode, resolve_mode
from .store import TrustStore

log = logging.getLogger(__name__)



class TrustGate:
    """The trust policy of one root: the store plus the ``trust_mode`` setting."""

    def __init__(self, settings: Settings) -> None:
        self.setting = settings.trust_mode
        self.store = TrustStore(settings.layout)

    def mode(self) -> TrustMode:
        return resolve_mode(self.setting, self.store)

    def admit(self, staging: Path, layout: PackageLayout) -> dict[str, Any]:
        """Check the extracted package (before anything of it runs); the record's ``signature`` field.

        Raises RunnerError 2030-2034 when the mode rejects the package."""
        return self.mode().admit(staging, layout.member(SIGNATURE_FILE)).to_dict()

    def check_activation(self, record: VersionRecord) -> None:
        """Raise RunnerError 2035 when the mode refuses to serve this version."""
        self.mode().check_activation(record.name, record.version, record.signature)

    def warm_up(self) -> threading.Thread | None:
        """Import the verifier in the background (model-signing takes over a second to import), so the
        first install after the daemon starts does not pay for it. Nothing to do under trust_mode off."""
        if self.setting == "off":
            return None

        def load() -> None:
            try:
                import model_signing.verifying  # noqa: F401

                import procvision_algorithm_sdk.signing.verify  # noqa: F401
            except ImportError as exc:
                log.error("package signatures cannot be verified: %s (install model-signing)", exc)

        thread = threading.Thread(target=load, name="trust-warm-up", daemon=True)
        thread.start()
        return thread
