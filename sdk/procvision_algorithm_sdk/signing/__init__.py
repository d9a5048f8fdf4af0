"""Package signatures in the OpenSSF ``model-signing`` format (a Sigstore bundle: a DSSE envelope over an
in-toto statement listing every file's SHA-256), offline, with elliptic-curve keys or a factory CA.

Layout: the signature is ``package.sig`` beside ``manifest.json``; it covers every other file of the
archive (the whole extracted tree, so root-level ``wheels/`` of the public packager's layout too).

Needs the ``sign`` extra (``pip install 'procvision-algorithm-sdk[sign]'``): ``model-signing``,
``cryptography`` and ``pyOpenSSL``. They are imported by the functions that use them, never at
``import procvision_algorithm_sdk``: the SDK itself stays numpy-only.
"""

from .bundle import SIGNATURE_FILE, SignedBundle, read_bundle, signature_member
from .errors import (
    CertificateInvalid,
    SignatureError,
    SignatureMalformed,
    SignatureMismatch,
    SigningUnavailable,
    UnknownSigner,
    Unsigned,
)
from .signer import Signer

__all__ = [
    "SIGNATURE_FILE",
    "SignedBundle",
    "read_bundle",
    "signature_member",
    "SignatureError",
    "Unsigned",
    "SignatureMismatch",
    "UnknownSigner",
    "CertificateInvalid",
    "SignatureMalformed",
    "SigningUnavailable",
    "Signer",
]
