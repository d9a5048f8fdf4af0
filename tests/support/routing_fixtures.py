"""A real routing stack for tests: registry, supervisor, installer and router on a tmp root.

Versions are "deployed" with ``tests.support.deploy`` (a folder plus a symlink to a shared venv with
our SDK) and registered with the real ``Registry``; workers are real processes.

Usage::

    from tests.support.deploy import deployer  # noqa: F401  (fixture)
    from tests.support.routing_fixtures import routing_env  # noqa: F401  (fixture)

    def test_x(routing_env):
        routing_env.deploy("1.0.0")
        routing_env.router.activate("algo", "1.0.0", ["P1"])
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from runner.config import Settings
from runner.package.installer import Installer
from runner.routing.router import Router
from runner.store.layout import RootLayout
from runner.store.registry import INSTALLED, Registry
from runner.supervision.supervisor import Supervisor
from tests.support.algorithms import algorithm_source
from tests.support.deploy import Deployed, Deployer

NAME = "algo"
PIDS = ["P1", "P2"]

#: One algorithm whose behaviour ``user_params["mode"]`` chooses; it reports its own version and
#: process so tests can tell who served a call. Modes: ok, mean, garbage, ng_without_reason, error;
#: ``sleep_ms`` slows execute down.
ALGO = algorithm_source(
    class_name="Algo", sdk_names=["read_image_from_shared_memory"],
    imports="""
        import json
        import os
        import time
        from pathlib import Path

        import numpy as np
    """,
    prelude="""
        MANIFEST = json.loads((Path(__file__).resolve().parent / "manifest.json").read_text())
        VERSION = MANIFEST["version"]
    """,
    info='{"name": MANIFEST["name"], "version": VERSION, "supported_pids": MANIFEST["supported_pids"], "steps": []}',
    pre_execute="""
        session.set("pre_version", VERSION)
        session.set("pre_os_pid", os.getpid())
        return {"status": "OK", "message": "", "data": {"version": VERSION, "os_pid": os.getpid()}}
    """,
    execute="""
        mode = user_params.get("mode", "ok")
        if user_params.get("sleep_ms"):
            time.sleep(float(user_params["sleep_ms"]) / 1000)
        if mode == "garbage":
            return {"status": "OK", "data": {"result_status": "MAYBE", "defect_rects": [{"x": 1}] * 30}}
        if mode == "ng_without_reason":
            return {"status": "OK", "data": {"result_status": "NG", "defect_rects": []}}
        if mode == "error":
            return {"status": "ERROR", "message": "lens cap on", "error_code": "1003"}
        debug = {"version": VERSION, "os_pid": os.getpid(), "pid": pid,
                 "pre_version": session.get("pre_version"), "pre_os_pid": session.get("pre_os_pid")}
        if mode == "mean":
            img = read_image_from_shared_memory(shared_mem_id, image_meta)
            debug["shape"] = list(img.shape)
            debug["mean"] = [float(v) for v in np.asarray(img, dtype=np.float64).reshape(-1, 3).mean(axis=0)]
            debug["first"] = [int(v) for v in img[0, 0]]
        return {"status": "OK", "message": "", "data": {"result_status": "OK", "debug": debug}}
    """)

#: A version whose code fails at import: its worker can never become ready.
BROKEN = '''
raise RuntimeError("this build is broken on purpose")
'''


def routing_settings(root: Any, **overrides: Any) -> Settings:
    """Settings for routing tests: short grace periods so stops and drains stay quick."""
    # Unboxed: these tests match a worker's own os.getpid() against the runner's worker pid, which a
    # boxed worker cannot see from its pid namespace (tests/runner/test_worker_sandbox.py covers boxes).
    values: dict[str, Any] = {"root": root, "shutdown_grace_s": 2.0, "handshake_timeout_ms": 60000,
                              "restart_backoff_initial_ms": 100, "crash_loop_max": 2, "retain_versions": 3,
                              "sandbox": "off"}
    values.update(overrides)
    return Settings(**values)


@dataclass
class RoutingEnv:
    """The parts of one routing stack."""

    deployer: Deployer
    settings: Settings
    layout: RootLayout
    registry: Registry
    supervisor: Supervisor
    installer: Installer
    router: Router

    def deploy(self, version: str, source: str = ALGO, pids: list[str] | None = None,
               name: str = NAME, state: str = INSTALLED) -> Deployed:
        """Deploy ``name``/``version`` with ``source`` and register it as the installer would."""
        supported = list(pids or PIDS)
        dep = self.deployer.deploy(name, version, source, manifest={"supported_pids": supported})
        rel = dep.package_dir.relative_to(dep.version_dir)
        self.registry.put({"name": name, "version": version, "supported_pids": supported, "state": state,
                           "python": str(dep.python), "package_dir": str(rel) if str(rel) != "." else None,
                           "dialect": "procvision", "entry_point": None})
        return dep

    def pool_state(self, version: str, name: str = NAME) -> str | None:
        pool = self.supervisor.get(name, version)
        return None if pool is None else pool.state.value


@pytest.fixture
def routing_env(deployer: Deployer) -> Iterator[RoutingEnv]:
    """A router over a real registry, supervisor and installer on this test's root."""
    layout = deployer.layout
    settings = routing_settings(layout.root)
    registry = Registry(layout)
    supervisor = Supervisor(settings, layout)
    installer = Installer(settings, registry)
    router = Router(settings, layout, registry, supervisor, installer, session_grace_s=0.5, drain_timeout_s=15.0)
    env = RoutingEnv(deployer, settings, layout, registry, supervisor, installer, router)
    try:
        yield env
    finally:
        supervisor.shutdown(timeout_s=2.0)
