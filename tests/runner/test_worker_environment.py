"""Finding 11: no runner secret reaches algorithm code through the environment.

Workers (served and smoke-tested) inherit only an allow-list of the daemon's environment
(``ENV_ALLOW_LIST`` plus ``worker_env_allow``); ``PROCVISION_*`` (the runner's token and settings)
never passes, whatever the allow-list says.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from procvision_algorithm_sdk.manifest import load_manifest
from runner.package.smoke import run_smoke_test
from runner.supervision import Supervisor
from runner.supervision.dialects import CallRequest, worker_environment
from tests.runner.supervision_support import fast_settings
from tests.support.algorithms import algorithm_source
from tests.support.deploy import Deployer

SECRET = "s3cret-runner-token-value"


def shows_env(record: Path) -> str:
    """An algorithm that reports its environment from the import (written to ``record``) and from a call."""
    return algorithm_source(
        class_name="Algo", imports="import json\nimport os",
        prelude=f'''
            with open({str(record)!r}, "w", encoding="utf-8") as fh:
                json.dump(dict(os.environ), fh)
        ''',
        pre_execute='return {"status": "OK", "message": "", "data": {}}',
        execute='return {"status": "OK", "message": "", "data": {"result_status": "OK", "env": dict(os.environ)}}')


DAEMON_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/home/station", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
              "CUDA_VISIBLE_DEVICES": "0", "PROCVISION_RUNNER_TOKEN": SECRET,
              "PROCVISION_RUNNER_ROOT": "/srv/procvision", "AWS_SECRET_ACCESS_KEY": "aws-secret",
              "PYTHONPATH": "/somewhere", "SITE_CAMERA_URL": "rtsp://cam", "PROC_ENTRY_POINT": "evil:Algo"}


def assert_clean(env: dict[str, str]) -> None:
    assert not [k for k in env if k.startswith("PROCVISION_")]
    assert SECRET not in env.values() and "aws-secret" not in env.values()
    assert "AWS_SECRET_ACCESS_KEY" not in env and "PYTHONPATH" not in env
    assert env.get("PROC_ENTRY_POINT") is None


def test_only_allow_listed_names_pass(tmp_path: Path) -> None:
    env = worker_environment(DAEMON_ENV, tmp_path / "pkg", tmp_path / "shm", 1 << 20)
    assert_clean(env)
    for name in ("PATH", "HOME", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES"):
        assert env[name] == DAEMON_ENV[name]
    assert "SITE_CAMERA_URL" not in env
    # A site can allow more, by name or prefix; the runner's own variables stay out regardless.
    extra = worker_environment(DAEMON_ENV, tmp_path / "pkg", tmp_path / "shm", 1 << 20,
                               extra_allow=["SITE_*", "PROCVISION_RUNNER_TOKEN", "PROCVISION_*"])
    assert extra["SITE_CAMERA_URL"] == "rtsp://cam"
    assert_clean(extra)


def test_served_worker_sees_no_runner_secret(deployer: Deployer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "env.json"
    dep = deployer.deploy("algo", "1.0.0", shows_env(record))
    # The supervisor's default base environment is the daemon's own.
    for name, value in DAEMON_ENV.items():
        if name != "PATH":
            monkeypatch.setenv(name, value)
    sup = Supervisor(fast_settings(deployer.layout.root, worker_env_allow=["SITE_*"], sandbox="off"), deployer.layout)
    try:
        pool = sup.start(dep.spec())
        outcome = pool.call(CallRequest(phase="execute"), 20.0)
        assert outcome.ok, outcome.message
        for env in (outcome.data["env"], json.loads(record.read_text(encoding="utf-8"))):
            assert_clean(env)
            assert env["SITE_CAMERA_URL"] == "rtsp://cam" and env["HOME"] == "/home/station"
            assert env["PROC_ALGO_ROOT"] == str(dep.package_dir)
    finally:
        sup.shutdown(timeout_s=1.0)


def test_smoke_tested_worker_sees_no_runner_secret(deployer: Deployer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "env.json"
    dep = deployer.deploy("algo", "1.0.0", shows_env(record))
    monkeypatch.setenv("PROCVISION_RUNNER_TOKEN", SECRET)
    manifest = load_manifest(dep.package_dir / "manifest.json", pids_required=False)
    report = run_smoke_test(fast_settings(deployer.layout.root, sandbox="off"), dep.python, dep.package_dir, manifest,
                            tmp_path / "smoke-shm")
    assert report["status"] == "PASS", report
    assert_clean(json.loads(record.read_text(encoding="utf-8")))
