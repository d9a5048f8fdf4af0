"""Error codes of the runner and the one exception type that carries them.

Package codes 2001-2007 come from the ProcVision runner specification; 2008+ are ours. Runtime codes
(1xxx) are the SDK's (``procvision_algorithm_sdk.errors.ErrorCode``). The API and the CLI turn a
``RunnerError`` into an HTTP problem or an exit code in one place each.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Any

from procvision_algorithm_sdk.errors import ErrorCode


class PackageErrorCode(StrEnum):
    """Package-management error codes (wire value is the numeric string)."""

    INVALID_ZIP = "2001"
    MANIFEST_MISSING = "2002"
    INCOMPATIBLE_PYTHON = "2003"
    WHEELS_MISSING = "2004"
    INSTALL_FAILED = "2005"
    ACTIVATION_CONFLICT = "2006"
    UNSAFE_UNINSTALL = "2007"
    # Added by this runner.
    VERSION_CONFLICT = "2008"  # same name+version already installed with different content
    NOT_FOUND = "2009"  # unknown name/version, pid or operation
    SMOKE_TEST_FAILED = "2010"  # installed but failed the protocol smoke test
    BUSY = "2011"  # another operation holds the lock this one needs
    ALREADY_RUNNING = "2012"  # a second daemon on the same root
    INVALID_REQUEST = "2013"  # a request that is well-formed but makes no sense
    PAYLOAD_TOO_LARGE = "2014"  # an upload over the configured limit
    UNAUTHORIZED = "2015"  # missing or wrong bearer token
    PORT_IN_USE = "2016"  # the daemon's API port is taken by another process
    DISK_FULL = "2017"  # a write under the root failed: no space left (ENOSPC) or quota (EDQUOT)
    INSECURE_SETUP = "2018"  # loose root/token permissions or --no-auth off loopback: refused
    SANDBOX_UNAVAILABLE = "2020"  # sandbox: require, and no sandbox mechanism works on this machine
    SANDBOX_FAILED = "2021"  # the worker's box could not be prepared (its segment folder)
    # Package trust (runner/trust): signatures checked before anything of a package runs.
    UNSIGNED = "2030"  # the package has no signature and trust_mode requires one
    SIGNATURE_MISMATCH = "2031"  # a file was changed, added or removed after signing (names the file)
    UNKNOWN_SIGNER = "2032"  # signed by a key that is not in <root>/trust/ (names the fingerprint)
    CERTIFICATE_INVALID = "2033"  # signing certificate expired, not for signing, or not from a trusted CA
    SIGNATURE_MALFORMED = "2034"  # the signature file is unreadable, or its envelope does not verify
    SIGNER_NOT_TRUSTED = "2035"  # activate/switch to a version whose signer is (no longer) trusted
    # Fast path (runner/fastpath): frame slots leased to local clients (zero-copy execute).
    SLOT_NOT_FOUND = "2050"  # no such frame slot (never leased, released, or its lease expired)
    SLOT_FOREIGN = "2051"  # the slot is leased to another caller (its lease key was not presented)
    SLOTS_EXHAUSTED = "2052"  # every frame slot is leased (frame_slots_max); release one or wait for expiry
    SLOT_BUSY = "2053"  # a call is already running on this slot's frame
    SLOT_INVALID = "2054"  # a slot request with an unusable shape, or a slot call that also sent an image
    # Console (runner/console): the browser console's cookie sessions.
    CSRF_REJECTED = "2060"  # a cookie-authenticated change without the session's X-CSRF-Token, or cross-origin

    @property
    def error_name(self) -> str:
        return self.name.lower()


def code_name(code: str) -> str:
    """snake_case name of any runner or runtime code."""
    for enum in (PackageErrorCode, ErrorCode):
        try:
            return enum(code).name.lower()
        except ValueError:
            continue
    return "unknown_error"


class RunnerError(Exception):
    """A failure a user can cause or see: code, name, a message that says what to fix, details.

    ``code`` is a numeric string from ``PackageErrorCode`` or the SDK's ``ErrorCode``.
    """

    def __init__(self, code: PackageErrorCode | ErrorCode | str, message: str, **details: Any) -> None:
        self.code = code.value if isinstance(code, Enum) else str(code)
        self.name = code_name(self.code)
        self.message = message
        self.details = details
        super().__init__(f"[{self.code} {self.name}] {message}")

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "message": self.message, "details": self.details}
