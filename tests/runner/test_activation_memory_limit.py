"""A version's own worker memory limit, given at activation (API ``memory_limit_mb``, CLI
``activate --memory-limit-mb``): kept with the bindings, used for its workers, kept by later
activations that give none, applied by restarting the version when it changes, and restored when
the daemon resumes."""

from __future__ import annotations

import json

import pytest

from runner.errors import RunnerError
from runner.routing.router import Router
from runner.supervision.supervisor import Supervisor
from tests.support.deploy import deployer  # noqa: F401 - fixture
from tests.support.routing_fixtures import NAME, RoutingEnv, routing_env  # noqa: F401 - fixture


def _limit(env: RoutingEnv, supervisor: Supervisor | None = None) -> dict[str, object]:
    pool = (supervisor or env.supervisor).get(NAME, "1.0.0")
    assert pool is not None
    return dict(pool.status()["memory_limit"])


def test_activation_limit_is_kept_applied_and_resumed(routing_env: RoutingEnv) -> None:  # noqa: F811
    env = routing_env
    env.deploy("1.0.0")
    env.router.activate(NAME, "1.0.0", ["P1"], memory_limit_mb=300)
    assert _limit(env)["limit_mb"] == 300 and env.supervisor.get(NAME, "1.0.0").spec.memory_limit_mb == 300
    body = json.loads(env.layout.active_file("P1").read_text())
    assert body["memory_limit_mb"] == 300
    first_pids = [w.pid for w in env.supervisor.get(NAME, "1.0.0").workers]

    # Binding another pid without a limit keeps the version's own (no restart).
    env.router.activate(NAME, "1.0.0", ["P2"])
    assert _limit(env)["limit_mb"] == 300
    assert [w.pid for w in env.supervisor.get(NAME, "1.0.0").workers] == first_pids
    assert env.router.active()["P2"].memory_limit_mb == 300

    # A new limit restarts the version's workers with it.
    env.router.activate(NAME, "1.0.0", ["P1"], memory_limit_mb=500)
    assert _limit(env)["limit_mb"] == 500
    assert [w.pid for w in env.supervisor.get(NAME, "1.0.0").workers] != first_pids

    with pytest.raises(RunnerError) as info:
        env.router.activate(NAME, "1.0.0", ["P1"], memory_limit_mb=-1)
    assert info.value.code == "2013" and "memory_limit_mb" in info.value.message

    # A restarted daemon resumes the version with the limit of its newest activation.
    env.supervisor.shutdown(timeout_s=2.0)
    supervisor = Supervisor(env.settings, env.layout)
    try:
        router = Router(env.settings, env.layout, env.registry, supervisor, env.installer)
        router.resume()
        assert _limit(env, supervisor)["limit_mb"] == 500
    finally:
        supervisor.shutdown(timeout_s=2.0)
