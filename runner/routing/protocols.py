"""What routing uses of the parts it drives, as protocols: the supervisor's pools, the supervisor, the
installer, and where calls are recorded. Routing reaches those parts only through these."""

from __future__ import annotations

from typing import Any, Protocol

from runner.supervision.dialects import CallRequest, Dialect
from runner.supervision.dialects.reservation import ImageReservation
from runner.supervision.spec import CallOutcome, WorkerSpec
from runner.supervision.states import SERVING_STATES, State


class PoolLike(Protocol):
    """What the router (and the service) use of the supervisor's ``VersionPool``."""

    @property
    def spec(self) -> WorkerSpec: ...

    @property
    def state(self) -> State: ...

    @property
    def dialect(self) -> Dialect | None: ...

    @property
    def last_error(self) -> dict[str, Any] | None: ...

    def call(self, request: CallRequest, timeout_s: float | None = None) -> CallOutcome: ...

    def reserve_image(self, height: int, width: int, channels: int,
                      session_id: str | None = None) -> ImageReservation | None: ...

    def in_flight(self) -> int: ...

    def status(self) -> dict[str, Any]: ...

    def ready_budget_s(self) -> float: ...

    def wait_first_attempt(self, timeout_s: float) -> bool: ...


class SupervisorLike(Protocol):
    """What the router uses of ``runner.supervision.supervisor.Supervisor``."""

    def start(self, spec: WorkerSpec, wait_ready: bool = True) -> PoolLike: ...

    def get(self, name: str, version: str) -> PoolLike | None: ...

    def stop(self, name: str, version: str, drain_timeout_s: float) -> Any: ...

    def restart(self, name: str, version: str) -> Any: ...


class InstallerLike(Protocol):
    """What the router uses of ``runner.package.installer.Installer``."""

    def remove(self, name: str, version: str) -> Any: ...


class CallRecorder(Protocol):
    """Where the router reports each execute call (the service's metrics)."""

    def record_call(self, name: str, version: str, status: str, latency_s: float | None) -> None: ...


def serving(pool: PoolLike) -> bool:
    """Whether the pool's workers take calls now."""
    return pool.state in SERVING_STATES
