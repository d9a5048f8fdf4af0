"""The dialect a worker speaks, and the one abstract base every dialect implements.

A dialect decides how the runner talks to a worker once its hello arrived: how readiness is proven,
how a ``CallRequest`` becomes a ``call`` frame's data, which requests are refused up front, how images
travel, what the install smoke test asks, and whether ``get_info`` is fetched after start. Code outside
this package asks the strategy (``strategy_for``); it never branches on the dialect itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.client import AdapterClient, HandshakeFailed
from procvision_algorithm_sdk.errors import ErrorCode

from .capabilities import capabilities_of
from .requests import CallRequest, check_phase

if TYPE_CHECKING:
    from runner.config import Settings

    from .handoff import ImageHandoff


class Dialect(StrEnum):
    """Which protocol variant a worker speaks (from its hello); the value is stored in the registry."""

    PROCVISION = "procvision"
    PROCVISION_EXECUTE_ONLY = "procvision-execute-only"
    PUBLIC_PHASE = "public-phase"
    PUBLIC_EXECUTE_ONLY = "public-execute-only"

    @property
    def strategy(self) -> DialectStrategy:
        """The strategy that speaks this dialect."""
        from .lookup import strategy_for

        return strategy_for(self)

    @property
    def ours(self) -> bool:
        """Our SDK's adapter (``pv:`` capabilities, shared memory segments), in either style."""
        return self.strategy.ours

    @property
    def execute_only(self) -> bool:
        """Calls take the execute-only shape: one ``execute`` with a current and a guide image."""
        return self.strategy.execute_only


class ImageTransport(StrEnum):
    """How a dialect's workers receive images."""

    #: POSIX shared memory segments (``procvision_algorithm_sdk.shared_memory.ImageSegment``).
    POSIX_SHM = "posix-shm"
    #: Files ``<PROC_SHM_DIR>/<id>.npy`` (array) or ``<id>.bin`` (encoded bytes), the public SDK's scheme.
    FILES = "files"


#: Caps a wait (seconds) by what is left of an outer deadline; the identity when there is none.
Budget = Callable[[float], float]


def _no_budget(seconds: float) -> float:
    return seconds


class DialectStrategy(ABC):
    """How the runner speaks one dialect. Stateless: one shared instance per dialect."""

    dialect: ClassVar[Dialect]
    #: Our SDK's adapter (``pv:`` capabilities).
    ours: ClassVar[bool]
    #: Calls take the execute-only shape (one ``execute`` with a current and a guide image).
    execute_only: ClassVar[bool]
    image_transport: ClassVar[ImageTransport]
    #: Ask a freshly started worker for get_info() when the handshake did not (see Worker).
    fetches_info_after_start: ClassVar[bool] = False
    #: An activation with its check proves the worker with an ``info`` call.
    checks_info_on_activation: ClassVar[bool] = True
    #: The phases the install smoke test calls, in order.
    smoke_phases: ClassVar[tuple[str, ...]]

    def proves_load_by_hello(self, capabilities: list[str]) -> bool:
        """Whether the hello itself proves the algorithm loaded (no readiness call needed)."""
        return False

    def confirm_ready(self, client: AdapterClient, hello: Mapping[str, Any], settings: Settings,
                      budget: Budget = _no_budget) -> dict[str, Any] | None:
        """Make sure the algorithm loaded; returns its get_info() when that was used to check.

        Workers whose hello does not prove the load are asked for ``info`` when they announce it;
        older ones must answer a ping. Raises HandshakeFailed (or another WorkerFailure) when the
        algorithm did not load. ``budget`` caps each wait by an outer deadline.
        """
        caps = capabilities_of(hello)
        if self.proves_load_by_hello(caps):
            return None
        timeout = settings.info_timeout_ms / 1000
        # Public adapters import the algorithm after their hello, so the first reply waits for that
        # load: it gets the handshake deadline, as the wait for our adapter's hello does.
        first_reply = budget(max(timeout, settings.handshake_timeout_ms / 1000))
        if "info" in caps:
            frame = client.call({"phase": "info", "step_index": 0, "pid": "", "user_params": {},
                                 "shared_mem_id": "", "image_meta": {}}, first_reply)
            if frame.get("type") != protocol.RESULT or frame.get("status") != "OK":
                raise HandshakeFailed(f"the algorithm did not load: info call answered "
                                      f"{frame.get('message') or frame.get('type')!r}",
                                      str(frame.get("error_code") or ErrorCode.HANDSHAKE_FAILED.value),
                                      stderr_tail=client.stderr_tail)
            data = frame.get("data")
            info = data.get("info") if isinstance(data, dict) else None
            return dict(info) if isinstance(info, dict) else None
        # Upstream adapters read their first frame only after importing the algorithm, and report an
        # import failure with a null-request-id error frame before exiting: a pong proves the load.
        client.ping(first_reply)
        return None

    def build_call(self, request: CallRequest, handoff: ImageHandoff) -> dict[str, Any]:
        """The ``data`` of a ``call`` frame for ``request``; images go through ``handoff``.

        Raises RunnerError(INVALID_PARAMS) for an unknown phase or a request this dialect cannot
        take. On error, images already put stay in ``handoff`` until ``release_all``.
        """
        check_phase(request)
        return self._call_data(request, handoff)

    @abstractmethod
    def _call_data(self, request: CallRequest, handoff: ImageHandoff) -> dict[str, Any]:
        """The call data of a request whose phase is known."""

    def check_request(self, name: str, version: str, request: CallRequest) -> None:
        """Refuse up front (RunnerError) what a worker of this dialect cannot run."""
        return None

    @abstractmethod
    def smoke_request(self, phase: str, step_index: int, pid: str, session: str,
                      images: tuple[np.ndarray, np.ndarray]) -> CallRequest:
        """The install smoke test's request for ``phase`` (one of ``smoke_phases``)."""
