"""Supervision of workers built on the PUBLIC ProcVision SDK (0.0.7 phase protocol, 0.3.2 execute-only).

Small on purpose: dialect detection, readiness, pixels through the file handoff, files freed. The
full compatibility story lives elsewhere.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runner.errors import RunnerError
from runner.supervision import CallRequest, Dialect, ImageInput, State, Supervisor, SupervisorEvent
from tests.runner.supervision_support import fast_settings, pid_alive
from tests.support.algorithms import algorithm_source
from tests.support.deploy import Deployer, deployer  # noqa: F401 - fixture
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

PHASE_ALGO = algorithm_source(
    class_name="Algo", info={"name": "pub", "version": "1.0.0", "supported_pids": ["P1"], "steps": []},
    imports="import os\nimport time\n\nimport numpy as np", sdk_names=["read_image_from_shared_memory"],
    pre_execute='return {"status": "OK", "message": "pre ok", "data": {}}',
    execute='''
        time.sleep(float(user_params.get("sleep", 0)))
        if user_params.get("print"):
            print("debug output that corrupts the 0.0.x protocol stream")
        files = sorted(os.listdir(os.environ["PROC_SHM_DIR"]))
        img = read_image_from_shared_memory(shared_mem_id, image_meta)
        return {"status": "OK", "message": "", "data": {
            "result_status": "OK", "files": files, "shape": list(img.shape),
            "sum": int(img.astype(np.int64).sum()), "first": [int(v) for v in img[0, 0]]}}
    ''')

EXECUTE_ONLY_ALGO = algorithm_source(
    class_name="Algo", style="execute_only", imports="import os\n\nimport numpy as np",
    execute='''
        return {"status": "OK", "message": step_desc, "data": {
            "result_status": "OK", "files": sorted(os.listdir(os.environ["PROC_SHM_DIR"])),
            "cur_sum": int(np.asarray(cur_image, dtype=np.int64).sum()),
            "guide_sum": int(np.asarray(guide_image, dtype=np.int64).sum()),
            "cur_shape": list(cur_image.shape), "labels": [g.get("label") for g in guide_info]}}
    ''')

BROKEN_IMPORT_ALGO = '''
import sys
print("loading weights failed", file=sys.stderr, flush=True)
raise ImportError("no module named fancy_model")
'''


@pytest.fixture
def supervisor(deployer: Deployer) -> Iterator[tuple[Supervisor, list[SupervisorEvent]]]:  # noqa: F811
    events: list[SupervisorEvent] = []
    sup = Supervisor(fast_settings(deployer.layout.root, heartbeat_interval_ms=100, heartbeat_grace_ms=1000),
                     deployer.layout, events.append)
    yield sup, events
    sup.shutdown(timeout_s=1)


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_public_0_0_7_phase_worker(deployer: Deployer, supervisor: Any) -> None:  # noqa: F811
    sup, events = supervisor
    dep = deployer.deploy("pub", "1.0.0", PHASE_ALGO, sdk="0.0.7")
    pool = sup.start(dep.spec())
    assert pool.dialect is Dialect.PUBLIC_PHASE and pool.state is State.RUNNING
    assert pool.hello is not None and pool.hello["sdk_version"] == "0.0.7"
    assert pool.info is not None and pool.info["name"] == "pub"  # readiness was confirmed with info
    img = np.zeros((6, 7, 3), dtype=np.uint8)
    img[0, 0] = [10, 20, 30]
    img[5, 6] = [1, 1, 1]
    out = pool.call(CallRequest("execute", image=ImageInput(array=img)))
    assert out.status == "OK", out
    assert out.data["shape"] == [6, 7, 3] and out.data["sum"] == 63 and out.data["first"] == [10, 20, 30]
    assert len(out.data["files"]) == 1 and out.data["files"][0].endswith(".npy")
    shm_dir = Path(pool.workers[0].shm_dir or "")
    assert shm_dir.is_dir() and os.listdir(shm_dir) == []  # the image file is gone after the call
    enc = pool.call(CallRequest("execute", image=ImageInput(array=None, encoded=_png(img))))
    assert enc.status == "OK" and enc.data["sum"] == 63 and enc.data["files"][0].endswith(".bin")
    assert os.listdir(shm_dir) == []
    # A call longer than the heartbeat grace: public workers answer no ping during a call, so the
    # heartbeat must stand aside instead of killing a healthy worker.
    pid = pool.workers[0].pid
    slow = pool.call(CallRequest("execute", user_params={"sleep": 2.0}, image=ImageInput(array=img)))
    assert slow.status == "OK" and slow.worker_pid == pid
    assert not any(e.kind == "recycle" for e in events)
    assert pool.call(CallRequest("pre")).message == "pre ok"
    # print() in a phase-era public worker corrupts its stdout: detected, reported, worker replaced.
    bad = pool.call(CallRequest("execute", user_params={"print": True}, image=ImageInput(array=img)))
    assert bad.status == "ERROR" and bad.error_code == "1010", bad
    again = pool.call(CallRequest("execute", image=ImageInput(array=img)))
    assert again.status == "OK" and again.worker_pid != pid


def test_public_0_3_2_execute_only_worker(deployer: Deployer, supervisor: Any) -> None:  # noqa: F811
    sup, _ = supervisor
    dep = deployer.deploy("pub3", "1.0.0", EXECUTE_ONLY_ALGO, sdk="0.3.2")
    pool = sup.start(dep.spec())
    assert pool.dialect is Dialect.PUBLIC_EXECUTE_ONLY and pool.state is State.RUNNING
    cur = np.full((3, 4, 3), 2, dtype=np.uint8)
    guide = np.full((3, 4, 3), 1, dtype=np.uint8)
    out = pool.call(CallRequest("execute", step_desc="check screw", guide_info=[{"label": "screw", "posList": []}],
                                image=ImageInput(array=cur), guide_image=ImageInput(array=guide)))
    assert out.status == "OK", out
    assert out.data["cur_sum"] == 72 and out.data["guide_sum"] == 36 and out.data["cur_shape"] == [3, 4, 3]
    assert out.data["labels"] == ["screw"] and out.message == "check screw"
    assert len(out.data["files"]) == 2
    pre = pool.call(CallRequest("pre", image=ImageInput(array=cur)))
    assert pre.status == "ERROR" and pre.error_code == "1003"
    assert pool.workers[0].pid == out.worker_pid


def test_public_worker_whose_import_fails_does_not_become_ready(deployer: Deployer,  # noqa: F811
                                                                  supervisor: Any) -> None:
    sup, _ = supervisor
    dep = deployer.deploy("pubbad", "1.0.0", BROKEN_IMPORT_ALGO, sdk="0.3.2")
    with pytest.raises(RunnerError) as info:
        sup.start(dep.spec())
    assert info.value.code == "1017"
    assert "fancy_model" in info.value.message
    pool = sup.get("pubbad", "1.0.0")
    assert pool is not None and pool.state is State.FAILED
    wait_until(lambda: not any(pid_alive(w.pid) for w in pool.workers if w.pid), what="workers gone")
