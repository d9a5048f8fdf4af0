"""Why a signature check failed: one exception class per reason, each naming the file or key at fault."""

from __future__ import annotations

from typing import Any


class SignatureError(Exception):
    """A signature check failed. ``reason`` is a stable snake_case word; ``details`` names what is at fault."""

    reason = "signature_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Unsigned(SignatureError):
    """The package carries no signature file."""

    reason = "unsigned"


class SignatureMismatch(SignatureError):
    """Files were changed, added or removed after signing (``changed``/``added``/``removed`` list them)."""

    reason = "signature_mismatch"


class UnknownSigner(SignatureError):
    """The signature is made by a key (or under a CA) that is not trusted (``fingerprint`` names it)."""

    reason = "unknown_signer"


class CertificateInvalid(SignatureError):
    """The signing certificate is expired, not yet valid, not for signing, or does not chain to a trusted CA."""

    reason = "certificate_invalid"


class SignatureMalformed(SignatureError):
    """The signature file is not a readable bundle, or its envelope does not verify (it was altered)."""

    reason = "signature_malformed"


class SigningUnavailable(RuntimeError):
    """The ``sign`` extra is not installed; the message says how to get it."""


def require_signing_libraries() -> None:
    """Raise SigningUnavailable unless model-signing and its crypto libraries import."""
    try:
        import cryptography  # noqa: F401
        import model_signing  # noqa: F401
        import OpenSSL  # noqa: F401
    except ImportError as exc:
        raise SigningUnavailable(
            f"signing needs the 'sign' extra ({exc.name} is missing): "
            "pip install 'procvision-algorithm-sdk[sign]' (model-signing needs Python 3.10 or newer)") from None
