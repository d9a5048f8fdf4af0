"""Error codes and exception classes shared by algorithms, the adapter and the runner.

The numeric codes are strings on the wire (``"1005"``), as in the public ProcVision protocol.
1000-1010 come from that protocol; 1011-1019 are added by this SDK for failures the public
protocol has no name for. This module imports nothing of ours so every layer can use it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorCode(str, Enum):
    """Runtime error codes (wire value is the numeric string)."""

    UNKNOWN_ERROR = "1000"
    INVALID_PID = "1001"
    IMAGE_LOAD_FAILED = "1002"
    INVALID_PARAMS = "1003"
    NOT_INITIALIZED = "1004"
    TIMEOUT = "1005"
    HEARTBEAT_LOST = "1006"
    SHARED_MEMORY_NOT_FOUND = "1007"
    UNSUPPORTED_COLOR_SPACE = "1008"
    EXECUTE_EXCEPTION = "1009"
    STDOUT_CONTAMINATED = "1010"
    # Added by this SDK.
    WORKER_CRASHED = "1011"
    PROTOCOL_ERROR = "1012"
    FRAME_TOO_LARGE = "1013"
    INVALID_RESULT = "1014"
    QUEUE_FULL = "1015"
    WORKER_UNAVAILABLE = "1016"
    HANDSHAKE_FAILED = "1017"
    MEMORY_LIMIT_EXCEEDED = "1018"

    @property
    def error_name(self) -> str:
        return self.name.lower()


def error_name(code: str) -> str:
    """The snake_case name of a numeric code, or ``"unknown_error"`` for codes we do not know."""
    try:
        return ErrorCode(str(code)).error_name
    except ValueError:
        return "unknown_error"


class ProcVisionError(Exception):
    """Base of every SDK exception. Carries a wire error code.

    ``fatal`` tells the runner to recycle the worker; ``retryable`` tells it the call may be
    sent again (to a fresh worker if fatal).
    """

    default_code: ErrorCode = ErrorCode.UNKNOWN_ERROR
    fatal: bool = False
    retryable: bool = False

    def __init__(self, message: str = "", error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message or self.__class__.__name__
        self.error_code = str(error_code.value if isinstance(error_code, ErrorCode) else error_code
                              ) if error_code is not None else self.default_code.value

    @property
    def error_name(self) -> str:
        return error_name(self.error_code)

    def to_fields(self) -> dict[str, Any]:
        """Fields this error adds to an ``error`` frame."""
        return {
            "error_code": self.error_code,
            "error_name": self.error_name,
            "error_class": self.__class__.__name__,
            "fatal": self.fatal,
            "retryable": self.retryable,
        }


class RecoverableError(ProcVisionError):
    """A transient failure: the same call may succeed if sent again."""

    default_code = ErrorCode.UNKNOWN_ERROR
    retryable = True


class FatalError(ProcVisionError):
    """The algorithm can no longer serve from this process: the runner restarts the worker."""

    default_code = ErrorCode.UNKNOWN_ERROR
    fatal = True


class GPUOutOfMemoryError(FatalError):
    """GPU memory is exhausted; a fresh process is the reliable way to get it back."""

    retryable = True


class ProgramError(ProcVisionError):
    """A bug in the algorithm's own code; retrying will not help."""

    default_code = ErrorCode.EXECUTE_EXCEPTION
