"""Finding 8: a worker that allocates without bound is stopped by the kernel at its memory limit.

The limit (``worker_memory_limit_mb``, or a version's own from its activation) is enforced by the
mechanism the probe picks (cgroup v2, cgroup v1, RLIMIT_DATA, none; ``status`` says which and why).
Going over it ends that worker only: the call gets 1018 memory_limit_exceeded naming the limit, the
crash counts toward the crash loop, the worker restarts, and every other worker keeps serving.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from pathlib import Path

import pytest

from procvision_algorithm_sdk.errors import ErrorCode
from runner.supervision import Supervisor
from runner.supervision.containment import choose_containment
from runner.supervision.containment.base import CGROUP_V1, CGROUP_V2, NONE, RLIMIT_DATA
from runner.supervision.containment.cgroup_tree import CgroupPlacement
from runner.supervision.dialects import CallRequest
from runner.supervision.launch import Launcher
from runner.supervision.states import State
from tests.runner.supervision_support import fast_settings
from tests.support.algorithms import memory_hog
from tests.support.deploy import Deployer
from tests.support.waiting import wait_until

#: Appends 64 MB blocks (written, so they are really resident) when ``hog`` is set, until something stops it.
HOG = memory_hog()


def _hog(pool: object) -> object:
    return pool.call(CallRequest(phase="execute", user_params={"hog": True}), 60.0)  # type: ignore[attr-defined]


def _ok(pool: object) -> object:
    return pool.call(CallRequest(phase="execute"), 30.0)  # type: ignore[attr-defined]


def _cgroup_mechanism() -> str | None:
    _, report = choose_containment("auto", 256)
    return report.mechanism if report.mechanism in (CGROUP_V1, CGROUP_V2) else None


# --- choosing the mechanism ---------------------------------------------------------------------


def _fake_proc(tmp_path: Path, mountinfo: str, cgroup: str) -> Path:
    proc = tmp_path / "proc-self"
    proc.mkdir()
    (proc / "mountinfo").write_text(mountinfo)
    (proc / "cgroup").write_text(cgroup)
    return proc


def test_probe_falls_back_in_order_and_says_why(tmp_path: Path) -> None:
    # A v1 "memory" mount whose folders are not a cgroup (no control files): not usable.
    fake_v1 = tmp_path / "memory"
    (fake_v1 / "daemon").mkdir(parents=True)
    proc = _fake_proc(tmp_path, f"30 25 0:26 / {fake_v1} rw - cgroup cgroup rw,memory\n",
                      "4:memory:/daemon\n")
    containment, report = choose_containment("auto", 512, proc)
    assert containment.name == report.mechanism == RLIMIT_DATA
    rejected = dict(report.rejected)
    assert "no cgroup2 hierarchy" in rejected[CGROUP_V2]
    assert "memory.limit_in_bytes" in rejected[CGROUP_V1]
    assert report.to_dict()["enforced"] is True and report.limit_mb == 512
    assert not any(p.name.startswith("procvision-probe") for p in (fake_v1 / "daemon").iterdir())

    none, why = choose_containment("none", 512, proc)
    assert none.name == why.mechanism == NONE and not why.enforced
    assert choose_containment("auto", 0, proc)[1].enforced is False


def test_probe_on_this_machine_names_the_mechanism() -> None:
    _, report = choose_containment("auto", 256)
    assert report.mechanism in (CGROUP_V2, CGROUP_V1, RLIMIT_DATA)
    assert report.reason
    for mechanism, why in report.rejected:
        assert mechanism and why


def test_probes_running_at_the_same_time_choose_the_same_mechanism() -> None:
    """Two installs' smoke tests can probe at the same moment; a probe cgroup named only by the
    process id made one of them see EEXIST and fall back to a weaker mechanism."""
    expected = choose_containment("auto", 256)[1].mechanism
    if expected not in (CGROUP_V1, CGROUP_V2):
        pytest.skip(f"no cgroup mechanism here ({expected})")
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between the probe's mkdir and rmdir
    chosen: list[str] = []
    try:
        def probe() -> None:
            for _ in range(50):
                chosen.append(choose_containment("auto", 256)[1].mechanism)

        threads = [threading.Thread(target=probe) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        sys.setswitchinterval(previous)
    assert chosen == [expected] * 100


# --- real workers over their limit ----------------------------------------------------------------


@pytest.mark.skipif(_cgroup_mechanism() is None, reason="the daemon cannot create memory cgroups here")
def test_cgroup_limit_kills_only_the_hog(deployer: Deployer) -> None:
    hog = deployer.deploy("hog", "1.0.0", HOG, class_name="Algorithm")
    other = deployer.deploy("other", "1.0.0", HOG, class_name="Algorithm")
    settings = fast_settings(deployer.layout.root, worker_memory_limit_mb=256, workers_per_version=2)
    sup = Supervisor(settings, deployer.layout)
    try:
        pool = sup.start(hog.spec())
        neighbour = sup.start(other.spec())
        status = pool.status()["memory_limit"]
        assert status["mechanism"] == _cgroup_mechanism() and status["limit_mb"] == 256 and status["enforced"]
        wait_until(lambda: all(w.state is State.RUNNING for w in pool.workers), what="both workers ready")
        pids_before = {w.pid for w in pool.workers}
        neighbour_pids = {w.pid for w in neighbour.workers}

        outcome = _hog(pool)
        assert outcome.error_code == ErrorCode.MEMORY_LIMIT_EXCEEDED.value == "1018", outcome.message
        assert outcome.error_name == "memory_limit_exceeded"
        assert "256 MB" in outcome.message and "memory limit" in outcome.message

        # The exit is handled by whichever thread saw it first: wait for the books to show it.
        killed = wait_until(lambda: [w for w in pool.workers if w.counters["crashes"] == 1], what="the crash counted")
        assert len(killed) == 1 and killed[0].crash_loop.recent == 1
        assert killed[0].last_error["code"] == "1018"
        survivor = next(w for w in pool.workers if w is not killed[0])
        assert survivor.pid in pids_before and survivor.counters["crashes"] == 0
        # The neighbour version and the other worker never noticed; the killed one comes back.
        assert {w.pid for w in neighbour.workers} == neighbour_pids
        assert _ok(neighbour).ok
        assert _ok(pool).ok
        wait_until(lambda: killed[0].state is State.RUNNING and killed[0].pid not in pids_before,
                   what="the killed worker to restart")
    finally:
        sup.shutdown(timeout_s=1.0)
    # Every worker cgroup is gone with its worker.
    parent = sup.launcher.containment.cgroup_parent
    assert parent is not None
    assert not [p.name for p in parent.iterdir() if p.name.startswith(f"pv-{os.getpid()}-")]


def test_a_kill_count_read_while_the_cgroup_is_removed_is_not_lost(tmp_path: Path) -> None:
    # The call's thread asks whether the worker was memory-killed while the exit handler removes
    # the worker's cgroup: it must get the count, not the nothing of a folder removed meanwhile.
    reading, go_on = threading.Event(), threading.Event()

    class Counted(CgroupPlacement):
        mechanism = CGROUP_V1

        def oom_kills(self) -> int | None:
            if threading.current_thread().name == "caller":
                reading.set()
                go_on.wait(10)
            return 1 if self.path.is_dir() else None  # a cgroup's counters go with its folder

        def memory_killed(self, exit_code: int | None, stderr_tail: list[str]) -> bool:
            return (self.kills() or 0) > 0

    folder = tmp_path / "pv-worker"
    folder.mkdir()
    placement = Counted(folder, 256)
    seen: list[int | None] = []
    caller = threading.Thread(target=lambda: seen.append(placement.kills()), name="caller")
    caller.start()
    assert reading.wait(10)
    cleaner = threading.Thread(target=placement.terminate, name="exit handler")
    cleaner.start()
    cleaner.join(0.5)  # unguarded, the folder is gone by now; guarded, the cleaner waits for the caller
    go_on.set()
    caller.join(10)
    cleaner.join(10)
    assert seen == [1] and not folder.exists() and placement.kills() == 1


def test_rlimit_limit_stops_the_hog_with_1018(deployer: Deployer) -> None:
    dep = deployer.deploy("hog", "1.0.0", HOG, class_name="Algorithm")
    settings = fast_settings(deployer.layout.root, worker_memory_limit_mb=4096,
                             worker_memory_mechanism="rlimit-data")
    sup = Supervisor(settings, deployer.layout)
    try:
        # The version's own limit (from its activation) wins over the setting.
        pool = sup.start(dataclasses.replace(dep.spec(), memory_limit_mb=400))
        status = pool.status()["memory_limit"]
        assert status["mechanism"] == RLIMIT_DATA and status["limit_mb"] == 400
        first = pool.workers[0].pid
        outcome = _hog(pool)
        assert outcome.error_code == "1018", outcome.message
        assert "400 MB" in outcome.message
        worker = pool.workers[0]
        wait_until(lambda: worker.counters["crashes"] == 1, what="the crash counted")
        assert worker.crash_loop.recent == 1
        wait_until(lambda: worker.state is State.RUNNING and worker.pid != first, what="a fresh worker")
        assert _ok(pool).ok
    finally:
        sup.shutdown(timeout_s=1.0)


def test_a_supervisor_spawns_through_the_launcher_it_is_given(deployer: Deployer) -> None:
    """A launcher passed in (built with a containment of the caller's choosing) is the one used,
    not one from the settings' probe, which here would bound nothing."""
    dep = deployer.deploy("hog", "1.0.0", HOG, class_name="Algorithm")
    settings = fast_settings(deployer.layout.root, worker_memory_limit_mb=400, worker_memory_mechanism="none")
    launcher = Launcher(settings, settings.inherited_environment, None,
                        containment=choose_containment("rlimit-data", 400))
    sup = Supervisor(settings, deployer.layout, launcher=launcher)
    try:
        assert sup.launcher is launcher and sup.containment.mechanism == RLIMIT_DATA
        pool = sup.start(dep.spec())
        assert pool.status()["memory_limit"]["mechanism"] == RLIMIT_DATA
        outcome = _hog(pool)
        assert outcome.error_code == "1018" and "400 MB" in outcome.message, outcome.message
    finally:
        sup.shutdown(timeout_s=1.0)
