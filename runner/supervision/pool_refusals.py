"""The errors a ``VersionPool`` refuses with, and the messages that tell the operator what to do:
a start that produced no ready worker, a version that cannot take calls, a full queue."""

from __future__ import annotations

from typing import Any

from procvision_algorithm_sdk.errors import ErrorCode
from procvision_algorithm_sdk.worker_failures import WorkerFailure
from runner.errors import RunnerError

from .spec import WorkerSpec


def start_failed(spec: WorkerSpec, failure: WorkerFailure | None, budget_s: float,
                 stderr_tail: list[str]) -> RunnerError:
    """Why a start gave up: the first worker failure (exit code, stderr tail), else the time-out."""
    if failure is None:
        return RunnerError(ErrorCode.HANDSHAKE_FAILED,
                           f"{spec.name} {spec.version}: no worker became ready within {budget_s:.0f}s",
                           stderr_tail=stderr_tail)
    code = ErrorCode.WORKER_UNAVAILABLE if failure.error_code == ErrorCode.WORKER_UNAVAILABLE.value \
        else ErrorCode.HANDSHAKE_FAILED
    return RunnerError(code, f"{spec.name} {spec.version} did not start: {failure.message} "
                       f"(exit code {failure.exit_code}); see stderr_tail and logs/{spec.name}/"
                       f"{spec.version}/worker.log", exit_code=failure.exit_code,
                       stderr_tail=list(failure.stderr_tail)[-20:], worker_error_code=failure.error_code)


def not_accepting(spec: WorkerSpec, state: str, last_error: dict[str, Any] | None) -> RunnerError:
    """A call to a version that is stopped or stopping (not started since)."""
    return RunnerError(ErrorCode.WORKER_UNAVAILABLE, f"{spec.name} {spec.version} is {state}; start it first",
                       state=state, last_error=last_error)


def all_workers_down(spec: WorkerSpec, state: str, last_error: dict[str, Any] | None) -> RunnerError:
    """A call to a version whose every worker has ended for good (failed or stopped)."""
    last = last_error or {}
    return RunnerError(ErrorCode.WORKER_UNAVAILABLE,
                       f"{spec.name} {spec.version} is {state}: "
                       f"{last.get('reason', 'no worker is running')}; start it again after fixing the cause",
                       state=state, last_error=last_error)


def queue_full(spec: WorkerSpec, depth: int, queue_max: int) -> RunnerError:
    """A call refused at once because ``queue_max`` calls already wait."""
    return RunnerError(ErrorCode.QUEUE_FULL,
                       f"{spec.name} {spec.version} has {depth} calls waiting "
                       f"(queue_max={queue_max}); retry later or add workers", queue_max=queue_max)
