"""Why a worker could not answer: the failures ``AdapterClient`` raises (also importable from
``procvision_algorithm_sdk.client``)."""

from __future__ import annotations

from .errors import ErrorCode, ProcVisionError


class WorkerFailure(ProcVisionError):
    """A worker could not answer: it exited, timed out, broke the protocol or refused to start.

    Carries the exit code and the last lines of the worker's stderr so the cause is never lost.
    """

    default_code = ErrorCode.WORKER_CRASHED

    def __init__(self, message: str, error_code: str | None = None, *, exit_code: int | None = None,
                 stderr_tail: list[str] | None = None) -> None:
        super().__init__(message, error_code)
        self.exit_code = exit_code
        self.stderr_tail = list(stderr_tail or [])

    def __str__(self) -> str:
        return self.message


class HandshakeFailed(WorkerFailure):
    """The worker did not send a valid hello in time, or reported that the algorithm failed to load."""

    default_code = ErrorCode.HANDSHAKE_FAILED


class CallTimedOut(WorkerFailure):
    """A call or ping got no reply within its deadline. The worker should be recycled."""

    default_code = ErrorCode.TIMEOUT


class WorkerExited(WorkerFailure):
    """The worker process ended (or closed stdout) while a reply was awaited."""

    default_code = ErrorCode.WORKER_CRASHED


class WorkerProtocolViolation(WorkerFailure):
    """The worker wrote bytes that are not a valid frame (for example print() into stdout)."""

    default_code = ErrorCode.STDOUT_CONTAMINATED
