"""Readiness of public-SDK workers under the supervisor: public adapters send hello before importing
the algorithm, so the time a heavy import takes falls into the runner's FIRST request, not before
the hello. The handshake deadline must cover it, for every dialect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runner.supervision import Dialect, State, Supervisor
from tests.runner.supervision_support import fast_settings
from tests.support.deploy import Deployer, deployer  # noqa: F401 - fixture
from tests.support.public_packages import EXECUTE_ONLY_SDK, PHASE_SDK, execute_only_source, phase_source

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

# A second longer than the 2 s info deadline it must not count against.
SLOW_IMPORT = "import time\ntime.sleep(3.0)  # a heavy import (torch, a model in the constructor)\n"


@pytest.fixture
def supervisor(deployer: Deployer) -> Iterator[Supervisor]:  # noqa: F811
    sup = Supervisor(fast_settings(deployer.layout.root, info_timeout_ms=2000, handshake_timeout_ms=60000),
                     deployer.layout)
    yield sup
    sup.shutdown(timeout_s=2)


@pytest.mark.parametrize(("sdk", "dialect"), [(PHASE_SDK, Dialect.PUBLIC_PHASE),
                                              (EXECUTE_ONLY_SDK, Dialect.PUBLIC_EXECUTE_ONLY)])
def test_slow_import_of_a_public_algorithm_is_not_a_failed_start(deployer: Deployer,  # noqa: F811
                                                                 supervisor: Supervisor, sdk: str,
                                                                 dialect: Dialect) -> None:
    body = phase_source("slow", "1.0.0", ["P1"]) if sdk == PHASE_SDK else execute_only_source()
    dep = deployer.deploy("slow", "1.0.0", SLOW_IMPORT + body, sdk=sdk, module="algo", class_name="Algorithm",
                          manifest={"supported_pids": ["P1"]})
    pool = supervisor.start(dep.spec())
    assert pool.state is State.RUNNING and pool.dialect is dialect
    if dialect is Dialect.PUBLIC_PHASE:
        assert pool.info is not None and pool.info["name"] == "slow"
