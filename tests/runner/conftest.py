"""Fixtures shared by the runner tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from runner.supervision import Supervisor, SupervisorEvent, VersionPool
from tests.runner.supervision_support import ALGO, StartFn, fast_settings
from tests.support.deploy import Deployer, deployer  # noqa: F401 - fixture


@pytest.fixture
def start(deployer: Deployer) -> Iterator[StartFn]:  # noqa: F811
    """Deploy ``source`` and start it under a fresh Supervisor; shut everything down afterwards."""
    supervisors: list[Supervisor] = []

    def _start(source: str = ALGO, wait_ready: bool = True, **overrides: Any
               ) -> tuple[Supervisor, VersionPool, list[SupervisorEvent]]:
        dep = deployer.deploy("algo", f"1.0.{len(supervisors)}", source)
        events: list[SupervisorEvent] = []
        sup = Supervisor(fast_settings(deployer.layout.root, **overrides), deployer.layout, events.append)
        supervisors.append(sup)
        return sup, sup.start(dep.spec(), wait_ready=wait_ready), events

    yield _start
    for sup in supervisors:
        sup.shutdown(timeout_s=1.0)
