"""Finding 9: what a worker starts never outlives it.

Every worker and smoke-test process is the leader of its own session and process group (and, where
the daemon can make one, of its own cgroup); every way a worker ends (stop, crash, recycle, the
smoke test's end) ends the whole group. The algorithm here starts a ``sleep``-like child while it
is imported, and another one that escapes the group with setsid (only a cgroup catches that one).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from procvision_algorithm_sdk.errors import ErrorCode
from procvision_algorithm_sdk.manifest import load_manifest
from runner.package.smoke import run_smoke_test
from runner.supervision import Supervisor
from runner.supervision.containment import choose_containment
from runner.supervision.containment.base import CGROUP_V1, CGROUP_V2
from runner.supervision.dialects import CallRequest
from runner.supervision.states import State
from tests.runner.supervision_support import fast_settings, pid_alive
from tests.support.algorithms import child_spawner, recorded_children
from tests.support.deploy import Deployer
from tests.support.waiting import wait_until

#: The algorithms here report host pids into a file of the test folder, which a boxed worker can
#: neither see nor write; the box's own clean-up is guarded in test_worker_sandbox.py.
UNBOXED = "off"


def stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def uses_cgroups(sup: Supervisor) -> bool:
    return sup.containment.mechanism in (CGROUP_V1, CGROUP_V2)


def assert_gone(pids: list[int], what: str) -> None:
    wait_until(lambda: not [p for p in pids if pid_alive(p)], 15.0, f"{what} to be gone: "
               f"{[p for p in pids if pid_alive(p)]}")


def test_each_worker_leads_its_own_group_and_stop_ends_it(deployer: Deployer, tmp_path: Path) -> None:
    record = tmp_path / "children.txt"
    dep = deployer.deploy("algo", "1.0.0", child_spawner(record), class_name="Algorithm")
    sup = Supervisor(fast_settings(deployer.layout.root, workers_per_version=2, sandbox=UNBOXED), deployer.layout)
    try:
        pool = sup.start(dep.spec())
        wait_until(lambda: len(recorded_children(record)) == 2 and all(w.state is State.RUNNING for w in pool.workers),
                   what="both workers up")
        for worker in pool.workers:
            assert worker.pid is not None
            fields = stat_fields(worker.pid)
            # Fields after the name: state, ppid, pgrp, session.
            assert int(fields[2]) == worker.pid and int(fields[3]) == worker.pid
            if uses_cgroups(sup):  # and its own cgroup, named for it, under the daemon's
                own = Path(f"/proc/{worker.pid}/cgroup").read_text(encoding="ascii")
                assert f"/pv-{os.getpid()}-" in own and f"-w{worker.index}\n" in own
        children = [c for _, c, _ in recorded_children(record)]
        escaped = [e for _, _, e in recorded_children(record)]
        assert all(pid_alive(p) for p in children + escaped)
        sup.stop("algo", "1.0.0")
        assert_gone(children, "the workers' children")
        if uses_cgroups(sup):
            assert_gone(escaped, "children that left the process group (the cgroup holds them)")
    finally:
        sup.shutdown(timeout_s=1.0)
        _reap(record)


def test_crash_and_recycle_end_the_group(deployer: Deployer, tmp_path: Path) -> None:
    record = tmp_path / "children.txt"
    dep = deployer.deploy("algo", "1.0.0", child_spawner(record), class_name="Algorithm")
    sup = Supervisor(fast_settings(deployer.layout.root, sandbox=UNBOXED), deployer.layout)
    try:
        pool = sup.start(dep.spec())
        worker = pool.workers[0]
        wait_until(lambda: len(recorded_children(record)) == 1, what="the first worker's children")
        first = recorded_children(record)[0]
        outcome = pool.call(CallRequest(phase="execute", user_params={"crash": True}), 20.0)
        assert outcome.error_code == "1011"
        assert_gone([first[1]] + ([first[2]] if uses_cgroups(sup) else []), "the crashed worker's children")

        wait_until(lambda: len(recorded_children(record)) == 2 and worker.state is State.RUNNING,
                   what="a restarted worker")
        second = recorded_children(record)[1]
        worker.recycle("test recycle", ErrorCode.TIMEOUT, counts=False)
        assert_gone([second[1]] + ([second[2]] if uses_cgroups(sup) else []), "the recycled worker's children")
    finally:
        sup.shutdown(timeout_s=1.0)
        _reap(record)


def test_smoke_test_leaves_no_children(deployer: Deployer, tmp_path: Path) -> None:
    record = tmp_path / "children.txt"
    dep = deployer.deploy("algo", "1.0.0", child_spawner(record), class_name="Algorithm")
    settings = fast_settings(deployer.layout.root, sandbox=UNBOXED)
    manifest = load_manifest(dep.package_dir / "manifest.json", pids_required=False)
    report = run_smoke_test(settings, dep.python, dep.package_dir, manifest, tmp_path / "smoke-shm")
    assert report["status"] == "PASS", report
    rows = recorded_children(record)
    assert len(rows) == 1
    worker, child, escaped = rows[0]
    assert_gone([worker, child], "the smoke worker and its child")
    _, report_of = choose_containment(settings.worker_memory_mechanism, settings.worker_memory_limit_mb)
    if report_of.mechanism in (CGROUP_V1, CGROUP_V2):
        assert_gone([escaped], "the smoke worker's child that left its group")
    _reap(record)


def _reap(record: Path) -> None:
    """Do not leave a failing test's children running on the shared machine."""
    for row in recorded_children(record):
        for pid in row[1:]:
            if pid_alive(pid) and b"pv-test-child" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, 9)


def test_start_ends_cgroups_of_daemons_that_are_gone(deployer: Deployer, tmp_path: Path) -> None:
    """A cgroup no record names (a smoke test's when the daemon was killed) is still found by its
    name, ``pv-<daemon pid>-...``, once that daemon is gone."""
    containment, report = choose_containment("auto", 0)
    parent = containment.cgroup_parent
    if parent is None:
        pytest.skip(f"no cgroups here ({report.reason})")
    dead_pid = _finished_pid()
    placement = containment.place(f"pv-{dead_pid}-smoke-1", 0)
    probe_left = parent / f"procvision-probe-{dead_pid}"  # a probe killed before it cleaned up
    probe_left.mkdir()
    child = subprocess.Popen(placement.wrap([sys.executable, "-c", "import time; time.sleep(3600)",
                                             "pv-test-child"]), start_new_session=True)
    try:
        wait_until(lambda: child.pid in [int(p) for p in (parent / f"pv-{dead_pid}-smoke-1" / "cgroup.procs")
                                         .read_text().split()], what="the child in its cgroup")
        sup = Supervisor(fast_settings(deployer.layout.root, sandbox=UNBOXED), deployer.layout)
        try:
            assert str(parent / f"pv-{dead_pid}-smoke-1") in sup.leftovers.cgroups
            assert child.wait(15) == -9
            assert not (parent / f"pv-{dead_pid}-smoke-1").exists()
            assert not probe_left.exists()
        finally:
            sup.shutdown(timeout_s=1.0)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        placement.terminate()
        if probe_left.exists():
            probe_left.rmdir()


def _finished_pid() -> int:
    """The pid of a process that has ended (so no daemon of that pid is alive)."""
    proc = subprocess.Popen(["true"])
    proc.wait(30)
    return proc.pid
