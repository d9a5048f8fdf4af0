"""Workers run with least privilege: a hostile algorithm, boxed, is denied every escape it tries,
from import and from execute, and its calls still complete normally.

The same algorithm with ``sandbox: off`` succeeds at the same attempts, so each attempt is real.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from procvision_algorithm_sdk.manifest import load_manifest
from procvision_algorithm_sdk.shared_memory import ImageSegment
from runner.config import Settings
from runner.errors import RunnerError
from runner.package.installer import Installer
from runner.package.smoke import run_smoke_test
from runner.store.registry import Registry
from runner.supervision import CallRequest, Supervisor, VersionPool
from runner.supervision.sandbox import BoxRequest, announce, box_worker, protections_for, select_sandbox
from runner.supervision.sandbox.bubblewrap import BubblewrapSandbox
from runner.supervision.sandbox.users import FALLBACK_ID, resolve_worker_user
from tests.api.support import ServeProcess
from tests.runner.supervision_support import ALGO, fast_settings
from tests.support import hostile
from tests.support.deploy import Deployer, deployer  # noqa: F401 - fixture
from tests.support.packages import algorithm_files, build_package, manifest_for, standard_algorithm
from tests.support.waiting import wait_until

#: An address outside this machine (TEST-NET-1: never routed), for the outside-connection attempt.
OUTSIDE = "192.0.2.1"


@pytest.fixture
def api_port() -> Iterator[int]:
    """A real listening socket on 127.0.0.1 standing in for the management API."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


def _require_bubblewrap(tmp_path: Path) -> None:
    sandbox = select_sandbox(fast_settings(tmp_path / "probe-root"))
    if not isinstance(sandbox, BubblewrapSandbox):
        pytest.fail(f"bubblewrap is needed for this test: {sandbox.probe().reason or 'not selected'}; "
                    "`./dev test` installs it (python -m tests.support.wheels), or apt-get install bubblewrap")


class Scene:
    """A runtime root with a token, a registry, trust keys and a running victim version whose worker
    holds a segment; the hostile version's targets point at all of them."""

    def __init__(self, dep: Deployer, port: int, **overrides: Any) -> None:
        layout = dep.layout
        layout.token_file.write_text("secret-token\n", encoding="utf-8")
        layout.token_file.chmod(0o600)
        layout.registry_file.write_text('{"versions": []}\n', encoding="utf-8")
        (layout.root / "trust").mkdir(exist_ok=True)
        self.trust_key = layout.root / "trust" / "station.pub"
        self.trust_key.write_text("ed25519 public key\n", encoding="utf-8")
        self.settings = fast_settings(layout.root, **overrides)
        # The daemon got its token from the environment: workers must not inherit it.
        self.supervisor = Supervisor(self.settings, layout,
                                     base_env={**os.environ, "PROCVISION_RUNNER_TOKEN": "secret-token"})
        victim = dep.deploy("victim", "1.0.0", ALGO)
        self.supervisor.start(victim.spec())
        victim_dirs = sorted(self.supervisor.runtime_dir.glob("victim@1.0.0/w0-g*"))
        assert victim_dirs, "the victim worker has no private folder"
        self.segment = ImageSegment.allocate(4, 4, 3, shm_dir=str(victim_dirs[-1]))
        # A system file it tries to write (it succeeds only unboxed, as root): unique per test.
        self.planted = Path("/usr/lib") / f"procvision-planted-{uuid.uuid4().hex}"
        targets = hostile.targets_json(
            token=layout.token_file, token_value="secret-token", registry=layout.registry_file, active=layout.active,
            other_manifest=victim.package_dir / "manifest.json", trust_key=self.trust_key,
            other_segment=self.segment.path, other_segment_dir=victim_dirs[-1], daemon_pid=os.getpid(),
            api_port=port, outside_host=OUTSIDE, system_file=self.planted,
            setuid_binary=layout.version_dir("hostile", "1.0.0") / "suid-id")
        self.hostile = dep.deploy("hostile", "1.0.0", hostile.SOURCE, files={"targets.json": targets})
        # A real setuid-root program: `id` prints euid=0 when the bit takes effect.
        setuid = self.hostile.version_dir / "suid-id"
        shutil.copy2("/usr/bin/id", setuid)
        os.chown(setuid, 0, 0)
        setuid.chmod(0o4755)
        self.registry_before = layout.registry_file.read_bytes()

    def run_hostile(self) -> tuple[VersionPool, dict[str, Any]]:
        pool = self.supervisor.start(self.hostile.spec())
        out = pool.call(CallRequest("execute", pid="P1"))
        assert out.status == "OK", out  # every denial is the algorithm's problem, not a failed call
        return pool, out.data["attempts"]

    def close(self) -> None:
        self.planted.unlink(missing_ok=True)
        self.segment.close()
        self.supervisor.shutdown(timeout_s=1.0)


@pytest.fixture
def scene(deployer: Deployer, api_port: int) -> Iterator[Any]:  # noqa: F811
    made: list[Scene] = []

    def _make(**overrides: Any) -> Scene:
        made.append(Scene(deployer, api_port, **overrides))
        return made[-1]

    yield _make
    for item in made:
        item.close()


def test_hostile_algorithm_is_denied_every_escape_and_its_calls_complete(scene: Any, tmp_path: Path) -> None:
    _require_bubblewrap(tmp_path)
    s = scene()
    pool, attempts = s.run_hostile()
    for phase in ("import", "execute"):
        for name in hostile.FORBIDDEN:
            outcome = attempts[phase][name]
            assert outcome["denied"], f"{name} from {phase} was allowed: {outcome['how']}"
        for name in hostile.ALLOWED:
            assert not attempts[phase][name]["denied"], f"{name} from {phase}: {attempts[phase][name]['how']}"
    # Nothing it tried to change changed, and the worker keeps serving.
    assert s.settings.layout.registry_file.read_bytes() == s.registry_before
    assert not (s.hostile.package_dir / "planted.py").exists()
    assert not s.planted.exists()
    assert list(s.settings.layout.active.iterdir()) == []
    pid = pool.workers[0].pid
    again = pool.call(CallRequest("execute", pid="P1"))
    assert again.ok and again.worker_pid == pid
    status = pool.status()
    assert status["sandbox"]["mechanism"] == "bubblewrap" and status["sandbox"]["network"] == "isolated"
    assert status["sandbox"]["seccomp"] is True  # what stops new_user_namespace and ptrace_child
    assert status["workers"][0]["sandbox"].startswith("bubblewrap: filesystem, processes")


def test_without_the_sandbox_the_same_attempts_succeed(scene: Any) -> None:
    s = scene(sandbox="off")
    try:
        pool, attempts = s.run_hostile()
        for phase in ("import", "execute"):
            # The token in the environment is stopped by the allow-listed worker environment even unboxed.
            assert attempts[phase]["read_token_env"]["denied"], attempts[phase]["read_token_env"]["how"]
            for name in ("read_token", "write_registry", "write_active", "read_other_version",
                         "read_trust_keys", "map_other_segment", "list_other_segments", "signal_daemon",
                         "read_daemon_proc", "connect_api", "write_package", "new_user_namespace",
                         "ptrace_child", "write_scratch"):
                assert not attempts[phase][name]["denied"], f"{name} from {phase}: {attempts[phase][name]['how']}"
        assert pool.status()["sandbox"]["mechanism"] == "none"
    finally:
        (s.hostile.package_dir / "planted.py").unlink(missing_ok=True)


def test_network_allowed_per_version_only(tmp_path: Path) -> None:
    _require_bubblewrap(tmp_path)
    settings = fast_settings(tmp_path / "root", sandbox_network=["licensed"])
    python = Path(os.path.realpath(sys.executable))
    assert protections_for(settings, "licensed", "2.0", tmp_path, python).network == "allowed"
    assert protections_for(settings, "other", "2.0", tmp_path, python).network == "isolated"
    pinned = fast_settings(tmp_path / "root", sandbox_network=["licensed@1.0"])
    assert protections_for(pinned, "licensed", "2.0", tmp_path, python).network == "isolated"


def test_require_refuses_to_start_workers_when_no_box_works(deployer: Deployer) -> None:  # noqa: F811
    settings = fast_settings(deployer.layout.root, sandbox="require", sandbox_bwrap="/nonexistent/bwrap")
    sup = Supervisor(settings, deployer.layout)
    try:
        with pytest.raises(RunnerError) as info:
            sup.start(deployer.deploy("algo", "1.0.0", ALGO).spec())
        assert info.value.code == "2020" and info.value.name == "sandbox_unavailable"
        assert "bubblewrap" in info.value.message
        assert sup.get("algo", "1.0.0") is None
    finally:
        sup.shutdown(timeout_s=1.0)


def test_auto_without_a_mechanism_runs_unboxed_and_says_so_loudly(deployer: Deployer,  # noqa: F811
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    settings = fast_settings(deployer.layout.root, sandbox_bwrap="/nonexistent/bwrap")
    with caplog.at_level(logging.INFO):
        announce(settings, logging.getLogger("test.sandbox"))
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert loud and "UNBOXED" in loud[0].getMessage() and "bubblewrap" in loud[0].getMessage()
    sup = Supervisor(settings, deployer.layout)
    try:
        pool = sup.start(deployer.deploy("algo", "1.0.0", ALGO).spec())
        assert pool.call(CallRequest("execute", pid="P1")).ok
        assert pool.status()["workers"][0]["sandbox"].startswith("none (no sandbox mechanism works here")
    finally:
        sup.shutdown(timeout_s=1.0)


def test_boxed_command_shows_only_what_the_worker_needs(deployer: Deployer, tmp_path: Path) -> None:  # noqa: F811
    _require_bubblewrap(tmp_path)
    dep = deployer.deploy("algo", "1.0.0", ALGO)
    settings = fast_settings(deployer.layout.root, sandbox_devices=["/dev/null"])
    work = tmp_path / "work"
    boxed = box_worker(settings, [str(dep.python), "-V"], {"PATH": "/usr/bin"}, name="algo", version="1.0.0",
                       package_dir=dep.package_dir, python=dep.python, work_dir=work)
    argv = boxed.argv
    binds = {argv[i + 2]: argv[i] for i, arg in enumerate(argv) if arg in ("--ro-bind", "--bind")}
    root = str(deployer.layout.root)
    # Its own package folder; nothing else of the root (no token, registry, active, other versions).
    assert [p for p in binds if p.startswith(root)] == [str(dep.package_dir.resolve())]
    assert argv[argv.index(str(work.resolve())) - 1] == "--bind"
    assert "--unshare-net" in argv and "--unshare-pid" in argv and "--cap-drop" in argv
    assert argv[argv.index("--dev-bind"):argv.index("--dev-bind") + 3] == ["--dev-bind", "/dev/null", "/dev/null"]
    assert boxed.env["HOME"] == boxed.env["TMPDIR"] == "/tmp"
    assert boxed.segment_dir == work.resolve() and oct(work.stat().st_mode & 0o7777) == "0o2750"
    if os.geteuid() == 0:
        assert f"--reuid={FALLBACK_ID}" in argv or any(a.startswith("--reuid=") for a in argv)
        assert "--no-new-privs" in argv and "--bounding-set=-all" in argv


def test_worker_user_setting_resolves_to_an_unprivileged_id() -> None:
    missing = resolve_worker_user("procvision-no-such-user")
    assert (missing.uid, missing.gid) == (FALLBACK_ID, FALLBACK_ID) and "no user" in missing.label
    nobody = resolve_worker_user("nobody")
    assert nobody.uid not in (0, FALLBACK_ID)
    assert resolve_worker_user("4242").uid == 4242
    with pytest.raises(ValueError):
        fast_settings(Path("/tmp/x"), sandbox_worker_user="root")


def test_box_request_keeps_the_runtime_root_hidden_under_shown_folders(tmp_path: Path) -> None:
    _require_bubblewrap(tmp_path)
    # A root inside a folder the box shows anyway (here: next to the package, inside it).
    package = tmp_path / "pkg"
    root = package / "algorithms"
    root.mkdir(parents=True)
    settings = fast_settings(root)
    sandbox = select_sandbox(settings)
    python = Path(sys.executable)
    boxed = sandbox.wrap([str(python), "-V"], {}, BoxRequest("a", "1", package, python, tmp_path / "w", (root,)))
    argv = boxed.argv
    assert argv[argv.index(str(root.resolve())) - 1] == "--tmpfs"


@pytest.mark.slow
def test_smoke_test_runs_in_the_box_so_a_package_needing_more_fails_at_install(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    _require_bubblewrap(tmp_path)
    # The algorithm reads a model from a folder of the host at import: the box does not show it.
    model = tmp_path / "host-models" / "model.bin"
    model.parent.mkdir()
    model.write_bytes(b"weights")
    source = f"_MODEL = open({str(model)!r}, 'rb').read()\n" + standard_algorithm("boxed_algo")
    manifest = manifest_for(name="boxed_algo")
    path = build_package(tmp_path / "src", manifest=manifest, files=algorithm_files(manifest, source))
    uv_cache = tmp_path_factory.getbasetemp() / "uv-cache-install"
    boxed = Settings(root=tmp_path / "boxed", uv_cache_dir=uv_cache)
    with pytest.raises(RunnerError) as info:
        Installer(boxed, Registry(boxed.layout)).install(path)
    assert info.value.code == "2010"
    report = info.value.details["report"]
    assert report["sandbox"]["mechanism"] == "bubblewrap"
    assert "model.bin" in " ".join(str(step.get("message")) for step in report["steps"])
    unboxed = Settings(root=tmp_path / "unboxed", uv_cache_dir=uv_cache, sandbox="off")
    result = Installer(unboxed, Registry(unboxed.layout)).install(path)
    assert result.report is not None and result.report["sandbox"]["mechanism"] == "none"


def test_require_refuses_the_smoke_test_too(deployer: Deployer, tmp_path: Path) -> None:  # noqa: F811
    dep = deployer.deploy("algo", "1.0.0", ALGO)
    settings = fast_settings(deployer.layout.root, sandbox="require", sandbox_bwrap="/nonexistent/bwrap")
    with pytest.raises(RunnerError) as info:
        run_smoke_test(settings, dep.python, dep.package_dir, load_manifest(dep.package_dir / "manifest.json"),
                       tmp_path / "smoke-shm")
    assert info.value.code == "2020" and "sandbox: require" in info.value.message


@pytest.mark.parametrize(("bwrap", "expected"), [
    ("/nonexistent/bwrap", "WORKERS RUN UNBOXED: no sandbox mechanism works here: bubblewrap: bubblewrap is not "
                           "installed"),
    ("bwrap", "worker sandbox: bubblewrap"),
])
def test_daemon_start_says_which_sandbox_workers_get(tmp_path: Path, bwrap: str, expected: str) -> None:
    if bwrap == "bwrap":
        _require_bubblewrap(tmp_path)
    daemon = ServeProcess(tmp_path / "root", "--port", "0",
                          env=dict(os.environ, PROCVISION_RUNNER_SANDBOX_BWRAP=bwrap))
    try:
        daemon.url()
        wait_until(lambda: any(expected in line for line in daemon.stderr), what=f"{expected!r} in the daemon log")
    finally:
        assert daemon.stop() == 0
