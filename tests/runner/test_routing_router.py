"""Router with real worker processes: activation rules, execute, garbage results, rollback, uninstall."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from runner.errors import RunnerError
from runner.routing.images import decode_image
from runner.routing.router import ExecutionResult, Router
from runner.supervision.dialects import CallRequest, ImageInput
from tests.support.deploy import deployer  # noqa: F401  (fixture)
from tests.support.routing_fixtures import BROKEN, RoutingEnv, routing_env  # noqa: F401
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def env(routing_env: RoutingEnv) -> RoutingEnv:  # noqa: F811 - the imported fixture
    return routing_env


def execute(env: RoutingEnv, pid: str = "P1", **params: object) -> ExecutionResult:
    return env.router.execute(pid, CallRequest(phase="execute", user_params=dict(params)))


def test_activate_and_execute_with_real_image(env: RoutingEnv) -> None:
    env.deploy("1.0.0")
    [binding] = env.router.activate("algo", "1.0.0", ["P1"])
    assert (binding.pid, binding.name, binding.version) == ("P1", "algo", "1.0.0")
    assert json.loads(env.layout.active_file("P1").read_text())["version"] == "1.0.0"

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    image = decode_image(buf.getvalue(), color_space="BGR")
    result = env.router.execute("P1", CallRequest(phase="execute", user_params={"mode": "mean"}, image=image))
    assert result.status == "OK", result.message
    debug = result.data["debug"]
    assert debug["shape"] == [48, 64, 3]
    # The worker hands algorithms RGB whatever the transport order: it must see the PNG's pixels.
    assert debug["mean"] == pytest.approx(pixels.reshape(-1, 3).mean(axis=0).tolist())
    assert debug["first"] == pixels[0, 0].tolist()
    assert result.served_by["name"] == "algo" and result.served_by["version"] == "1.0.0"
    assert result.served_by["worker_pid"] == debug["os_pid"]
    assert result.served_by["dialect"] == "procvision"
    assert result.phase == "execute" and result.step_index == 1 and result.latency_ms > 0


def test_activate_rules(env: RoutingEnv) -> None:
    env.deploy("1.0.0")
    env.deploy("2.0.0")
    env.deploy("3.0.0", state="invalid")

    with pytest.raises(RunnerError) as info:
        env.router.activate("algo", "9.9.9", ["P1"])
    assert info.value.code == "2009"
    with pytest.raises(RunnerError) as info:
        env.router.activate("algo", "1.0.0", ["P7"])
    assert info.value.code == "2006" and "P7" in info.value.message
    with pytest.raises(RunnerError) as info:
        env.router.activate("algo", "3.0.0", ["P1"])
    assert info.value.code == "2006" and "invalid" in info.value.message
    assert env.router.active() == {}

    env.router.activate("algo", "1.0.0", ["P1"])
    env.router.activate("algo", "1.0.0", ["P1", "P2"])  # same version again: fine
    with pytest.raises(RunnerError) as info:
        env.router.activate("algo", "2.0.0", ["P2"])
    assert info.value.code == "2006" and "switch" in info.value.message
    assert {p: b.version for p, b in env.router.active().items()} == {"P1": "1.0.0", "P2": "1.0.0"}
    assert env.pool_state("2.0.0") is None  # refused before anything was started


def test_activate_of_version_that_cannot_start_binds_nothing(env: RoutingEnv) -> None:
    env.deploy("1.0.0", source=BROKEN)
    with pytest.raises(RunnerError) as info:
        env.router.activate("algo", "1.0.0", ["P1"])
    assert "could not start" in info.value.message and "nothing was changed" in info.value.message
    assert env.router.active() == {}
    assert not env.layout.active_file("P1").exists()


def test_execute_unbound_pid_is_2009_naming_invalid_pid(env: RoutingEnv) -> None:
    with pytest.raises(RunnerError) as info:
        execute(env, "P9")
    assert info.value.code == "2009"
    assert "1001" in info.value.message and "invalid_pid" in info.value.message


def test_garbage_results_become_1014_and_errors_keep_their_code(env: RoutingEnv) -> None:
    env.deploy("1.0.0")
    env.router.activate("algo", "1.0.0", ["P1"])
    garbage = execute(env, mode="garbage")
    assert (garbage.status, garbage.error_code, garbage.error_name) == ("ERROR", "1014", "invalid_result")
    paths = [i["path"] for i in garbage.data["issues"]]
    assert "data.result_status" in paths and "data.defect_rects" in paths
    assert garbage.details["issues"] == garbage.data["issues"]
    assert execute(env, mode="ng_without_reason").error_code == "1014"
    error = execute(env, mode="error")
    assert (error.status, error.error_code, error.error_name, error.message) == (
        "ERROR", "1003", "invalid_params", "lens cap on")
    assert execute(env).status == "OK"  # the worker is still fine


def test_resume_restores_bindings_and_workers(env: RoutingEnv) -> None:
    env.deploy("1.0.0")
    env.router.activate("algo", "1.0.0", ["P1"])
    env.router.stop("algo", "1.0.0")
    fresh = Router(env.settings, env.layout, env.registry, env.supervisor, env.installer)
    fresh.resume()
    assert fresh.resume_errors == {}
    assert {p: b.version for p, b in fresh.active().items()} == {"P1": "1.0.0"}
    assert fresh.execute("P1", CallRequest(phase="execute")).status == "OK"


def test_rollback(env: RoutingEnv) -> None:
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        env.deploy(version)
    env.router.activate("algo", "1.0.0", ["P1", "P2"])
    env.router.switch("algo", "2.0.0", ["P1", "P2"])
    env.router.switch("algo", "3.0.0", ["P1"])
    assert execute(env).served_by["version"] == "3.0.0"

    [back] = env.router.rollback(["P1"])
    assert back.version == "2.0.0"
    assert execute(env).served_by["version"] == "2.0.0"
    wait_until(lambda: env.pool_state("3.0.0") == "stopped", what="3.0.0 stopped after rollback")

    # A second rollback undoes the first (the rollback is history too): back where P1 started.
    [again] = env.router.rollback(["P1"])
    assert again.version == "3.0.0" and execute(env).served_by["version"] == "3.0.0"

    env.installer.remove("algo", "1.0.0")  # P2's only earlier version is gone: nothing to roll back to
    with pytest.raises(RunnerError) as info:
        env.router.rollback(["P2"])
    assert info.value.code == "2009"
    with pytest.raises(RunnerError) as info:
        env.router.rollback(["P9"])
    assert info.value.code == "2009"


def test_uninstall_refusals_and_force(env: RoutingEnv) -> None:
    env.deploy("1.0.0")
    env.router.activate("algo", "1.0.0", ["P1"])
    with pytest.raises(RunnerError) as info:
        env.router.uninstall("algo", "1.0.0")
    assert info.value.code == "2007" and "P1" in info.value.message
    assert env.layout.version_dir("algo", "1.0.0").is_dir()
    assert execute(env).status == "OK"

    with pytest.raises(RunnerError) as info:
        env.router.uninstall("algo", "7.7.7")
    assert info.value.code == "2009"

    env.router.uninstall("algo", "1.0.0", force=True)
    assert not env.layout.version_dir("algo", "1.0.0").exists()
    assert env.registry.get("algo", "1.0.0") is None
    assert env.router.active() == {}
    assert not env.layout.active_file("P1").exists()
    assert env.pool_state("1.0.0") == "stopped"
    with pytest.raises(RunnerError) as info:
        execute(env)
    assert info.value.code == "2009"


def test_uninstall_of_inactive_version_stops_its_worker(env: RoutingEnv) -> None:
    env.deploy("1.0.0")
    env.router.start("algo", "1.0.0")
    assert env.pool_state("1.0.0") == "running"
    env.router.uninstall("algo", "1.0.0")
    assert env.pool_state("1.0.0") == "stopped"
    assert not env.layout.version_dir("algo", "1.0.0").exists()


def test_deactivate_stops_unused_worker(env: RoutingEnv) -> None:
    env.deploy("1.0.0")
    env.router.activate("algo", "1.0.0", ["P1", "P2"])
    env.router.deactivate(["P1"])
    assert env.pool_state("1.0.0") == "running"  # P2 still uses it
    with pytest.raises(RunnerError) as info:
        env.router.deactivate(["P1"])
    assert info.value.code == "2009"
    env.router.deactivate(["P2"])
    assert env.pool_state("1.0.0") == "stopped"
    assert env.router.active() == {}


def test_image_input_without_pixels_is_refused_by_the_worker_side(env: RoutingEnv) -> None:
    env.deploy("1.0.0")
    env.router.activate("algo", "1.0.0", ["P1"])
    result = env.router.execute("P1", CallRequest(phase="execute", user_params={"mode": "mean"},
                                                  image=ImageInput(color_space="XYZ",
                                                                   array=np.zeros((2, 2, 3), np.uint8))))
    assert result.status == "ERROR" and result.error_code == "1008"


def test_explicit_stop_and_restart(env: RoutingEnv) -> None:
    env.deploy("1.0.0")
    env.router.activate("algo", "1.0.0", ["P1"])
    env.router.stop("algo", "1.0.0")
    assert env.pool_state("1.0.0") == "stopped"
    with pytest.raises(RunnerError) as info:
        execute(env)
    assert info.value.code == "1016"
    env.router.restart("algo", "1.0.0")
    assert execute(env).status == "OK"
    status = env.router.start("algo", "1.0.0")  # already running: just its status
    assert status["state"] in ("running", "executing")
    with pytest.raises(RunnerError) as info:
        env.router.start("algo", "8.8.8")
    assert info.value.code == "2009"
