"""Packages built with the PUBLIC ProcVision SDK (0.0.7 phase protocol, 0.3.2 execute-only), unchanged,
installed and run through a real daemon over HTTP: real zips, real venvs, real public adapters.

Each algorithm reports the pixels it saw (shape, per-channel mean, sampled values, checksum), so the
tests prove the image handoff end to end, including the public read function's channel rules.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.api.support import RunningServer, install, start_server
from tests.compat.conftest import EXECUTE_ONLY, OURS, PHASE
from tests.support.public_packages import (
    EXECUTE_ONLY_SDK,
    PHASE_SDK,
    build_public_package,
    expected_facts,
    png_bytes,
    sample_image,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

#: Heartbeats far shorter than the slow calls below: a public worker that answers no ping during a
#: call must still not be declared dead. The grace leaves an idle worker room to answer on a busy machine.
HEARTBEAT_INTERVAL_MS = 200
HEARTBEAT_GRACE_MS = 2000


class Compat:
    """A daemon with the three compat packages installed and activated."""

    def __init__(self, server: RunningServer, client: httpx.Client, installs: dict[str, dict[str, Any]]) -> None:
        self.server = server
        self.client = client
        self.installs = installs

    def execute(self, pid: str, image: np.ndarray | None = None, *, guide: np.ndarray | None = None,
                **fields: Any) -> httpx.Response:
        data = {"pid": pid, **{k: (json.dumps(v) if isinstance(v, dict | list) else str(v))
                               for k, v in fields.items()}}
        files: dict[str, tuple[str, bytes, str]] = {}
        if image is not None:
            files["image"] = ("cur.png", png_bytes(image), "image/png")
        if guide is not None:
            files["guide_image"] = ("guide.png", png_bytes(guide), "image/png")
        return self.client.post("/execute", data=data, files=files)

    def show(self, name: str, version: str = "1.0.0") -> dict[str, Any]:
        response = self.client.get(f"/algorithms/{name}/{version}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def worker(self, name: str) -> dict[str, Any]:
        workers = self.show(name)["workers"]
        assert workers, f"{name} has no workers"
        return dict(workers["workers"][0])


@pytest.fixture(scope="module")
def compat(tmp_path_factory: pytest.TempPathFactory, compat_zips: dict[str, Path],
           compat_uv_cache: Path) -> Iterator[Compat]:
    base = tmp_path_factory.mktemp("compat-api")
    server = start_server(base / "root", uv_cache_dir=compat_uv_cache,
                          heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS, heartbeat_grace_ms=HEARTBEAT_GRACE_MS,
                          restart_backoff_initial_ms=100, execute_timeout_ms=30000,
                          # This module recycles workers on purpose (prints, a timeout and its
                          # retries): far more often than the crash-loop guard is meant to allow.
                          crash_loop_max=50)
    client = server.client()
    try:
        installs = {}
        for key, (name, version, pid) in ((PHASE_SDK, PHASE), (EXECUTE_ONLY_SDK, EXECUTE_ONLY), ("ours", OURS)):
            op = install(client, compat_zips[key])
            assert op["state"] == "succeeded", op
            installs[key] = op
            response = client.post("/algorithms/activate", json={"name": name, "version": version, "pids": [pid]})
            assert response.status_code == 200, response.text
        yield Compat(server, client, installs)
    finally:
        client.close()
        server.stop()


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = dict(response.json())
    assert body["status"] == "OK", body
    return body


# --- what was installed ---------------------------------------------------------------------------


def test_dialect_and_sdk_are_recorded_per_version(compat: Compat) -> None:
    phase, execute_only, ours = compat.show(PHASE[0]), compat.show(EXECUTE_ONLY[0]), compat.show(OURS[0])
    assert (phase["dialect"], phase["sdk_version"]) == ("public-phase", "0.0.7")
    assert (execute_only["dialect"], execute_only["sdk_version"]) == ("public-execute-only", "0.3.2")
    assert ours["dialect"] == "procvision"
    # The public packager's layout: the project folder (not the algorithm name) holds manifest.json.
    assert phase["package_dir"] == "phase_project" and execute_only["package_dir"] == "exec_project"
    assert [s["name"] for s in phase["smoke"]["steps"]] == ["hello", "info", "pre", "execute"]
    assert [s["name"] for s in execute_only["smoke"]["steps"]] == ["hello", "execute"]
    listed = {r["name"]: r for r in compat.client.get("/algorithms").json()}
    assert listed[EXECUTE_ONLY[0]]["dialect"] == "public-execute-only"


# --- the phase era (0.0.7) ------------------------------------------------------------------------


@pytest.mark.parametrize("color_space", ["RGB", "BGR"])
def test_phase_algorithm_sees_exactly_the_sent_pixels(compat: Compat, color_space: str) -> None:
    """The runner stores the image in the order ``color_space`` names; the public read function
    reverses BGR, so the algorithm ends up with the PNG's RGB pixels either way."""
    image = sample_image()
    body = _ok(compat.execute(PHASE[2], image, color_space=color_space, camera_id="cam-7"))
    debug = body["data"]["debug"]
    assert debug["pixels"] == expected_facts(image)
    meta = debug["image_meta"]
    assert (meta["width"], meta["height"], meta["color_space"], meta["camera_id"]) == (53, 37, color_space, "cam-7")
    assert debug["pid"] == PHASE[2] and debug["step_index"] == 1
    assert body["served_by"]["dialect"] == "public-phase"
    assert "phase" not in body["data"], "the public adapter's echo fields are not part of the result"


def test_phase_algorithm_gets_mono_expanded_to_three_channels(compat: Compat) -> None:
    mono = sample_image()[..., 1].copy()
    body = _ok(compat.execute(PHASE[2], mono))
    assert body["data"]["debug"]["pixels"] == expected_facts(np.stack([mono, mono, mono], axis=2))


def test_phase_pre_execute_reads_the_image(compat: Compat) -> None:
    image = sample_image(seed=11)
    body = _ok(compat.execute(PHASE[2], image, phase="pre"))
    assert body["phase"] == "pre"
    assert body["data"]["debug"]["pixels"] == expected_facts(image)


def test_image_files_exist_during_the_call_and_are_deleted_after(compat: Compat) -> None:
    body = _ok(compat.execute(PHASE[2], sample_image()))
    debug = body["data"]["debug"]
    files = [f for f in debug["shm_files"] if f.endswith(".npy")]
    assert len(files) == 1, debug["shm_files"]
    assert not (Path(debug["shm_dir"]) / files[0]).exists(), "the call's image file outlived the call"


def test_algorithm_error_code_dropped_by_public_adapter(compat: Compat) -> None:
    """0.0.7 forwards only status/message/data: the algorithm's 1003 cannot reach the runner. The
    answer is still a clear ERROR, with the code the public adapter reported (none -> 1000)."""
    body = compat.execute(PHASE[2], sample_image(), user_params={"mode": "fail"}).json()
    assert body["status"] == "ERROR" and body["message"] == "asked to fail"
    assert (body["error_code"], body["error_name"]) == ("1000", "unknown_error")
    # Our SDK, same source: the code survives.
    ours = compat.execute(OURS[2], sample_image(), user_params={"mode": "fail"}).json()
    assert (ours["status"], ours["error_code"], ours["error_name"]) == ("ERROR", "1003", "invalid_params")


@pytest.mark.parametrize(("pid", "fields"), [(PHASE[2], {"user_params": {"mode": "raise"}}),
                                             (EXECUTE_ONLY[2], {"step_desc": "raise"})])
def test_algorithm_exception_is_the_public_adapters_1009(compat: Compat, pid: str, fields: dict[str, Any]) -> None:
    guide = sample_image(seed=2) if pid == EXECUTE_ONLY[2] else None
    body = compat.execute(pid, sample_image(), guide=guide, **fields).json()
    assert (body["status"], body["error_code"], body["error_name"]) == ("ERROR", "1009", "execute_exception")
    assert "blew up on purpose" in body["message"]


@pytest.mark.parametrize("text", ["algorithm debug output: checking the part now", "ok", "检测完成"])
def test_print_in_phase_era_is_1010_and_the_worker_is_recycled(compat: Compat, text: str) -> None:
    """0.0.7 writes frames to the same stdout print() uses: the stream is corrupt. The call fails
    with 1010 naming the cause (also for a print shorter than a frame header, or not ASCII), the
    worker is replaced, and the next call works."""
    first = _ok(compat.execute(PHASE[2], sample_image()))
    before, old_shm_dir = first["served_by"]["worker_pid"], Path(first["data"]["debug"]["shm_dir"])
    response = compat.execute(PHASE[2], sample_image(), user_params={"mode": "print", "text": text})
    assert response.status_code >= 500, response.text
    problem = response.json()
    assert (problem["code"], problem["name"]) == ("1010", "stdout_contaminated"), problem
    assert "stdout" in problem["detail"]
    image = sample_image(seed=5)
    after = _ok(compat.execute(PHASE[2], image))
    assert after["served_by"]["worker_pid"] != before
    assert not old_shm_dir.exists(), "the recycled worker's image folder must be removed"
    assert after["data"]["debug"]["pixels"] == expected_facts(image)
    assert compat.worker(PHASE[0])["restarts"] >= 1


# --- the execute-only era (0.3.2) -----------------------------------------------------------------


def test_execute_only_algorithm_gets_both_images_step_desc_and_guide_info(compat: Compat) -> None:
    cur, guide = sample_image(seed=21), sample_image(41, 29, seed=22)
    guide_info = [{"label": "screw", "posList": [{"x": 3, "y": 4, "width": 10, "height": 12}]}]
    body = _ok(compat.execute(EXECUTE_ONLY[2], cur, guide=guide, step_index=2, step_desc="check screw 2",
                              guide_info=guide_info, color_space="BGR"))
    debug = body["data"]["debug"]
    assert debug["cur"] == expected_facts(cur)
    assert debug["guide"] == expected_facts(guide)
    assert (debug["step_index"], debug["step_desc"], debug["guide_info"]) == (2, "check screw 2", guide_info)
    assert body["served_by"]["dialect"] == "public-execute-only"
    assert not any((Path(debug["shm_dir"]) / f).exists() for f in debug["shm_files"]), \
        "both image files must be deleted after the call"
    assert len(debug["shm_files"]) == 2


def test_pre_is_refused_for_execute_only_workers(compat: Compat) -> None:
    response = compat.execute(EXECUTE_ONLY[2], sample_image(), guide=sample_image(seed=3), phase="pre")
    assert 400 <= response.status_code < 500, response.text
    problem = response.json()
    assert problem["code"] == "2013" and "pre" in problem["detail"] and "execute-only" in problem["detail"]


def test_execute_only_without_guide_image_is_a_clear_error(compat: Compat) -> None:
    body = compat.execute(EXECUTE_ONLY[2], sample_image()).json()
    code = body.get("error_code") or body.get("code")
    assert code == "1003", body
    assert "guide image" in (body.get("message") or body.get("detail") or "")


def test_print_in_execute_only_era_is_harmless(compat: Compat) -> None:
    """0.3.x points fd 1 at stderr before the algorithm loads: print() cannot corrupt frames."""
    before = compat.worker(EXECUTE_ONLY[0])
    body = _ok(compat.execute(EXECUTE_ONLY[2], sample_image(), guide=sample_image(seed=9), step_desc="print"))
    assert body["served_by"]["worker_pid"] == before["pid"]
    assert compat.worker(EXECUTE_ONLY[0])["restarts"] == before["restarts"]

    def logged() -> bool:
        lines = compat.client.get(f"/algorithms/{EXECUTE_ONLY[0]}/1.0.0/logs", params={"tail": 200}).json()["lines"]
        return any("algorithm debug output: checking the part now" in line for line in lines)

    wait_until(logged, what="the printed line in the worker log")


# --- heartbeat ------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["phase", "execute-only"])
def test_long_call_on_a_public_worker_is_not_a_lost_heartbeat(compat: Compat, which: str) -> None:
    """Public adapters answer no ping while a call runs. A call many heartbeat periods long (but within
    its execute deadline) must finish normally on the same worker, not be killed as 1006."""
    name, _version, pid = PHASE if which == "phase" else EXECUTE_ONLY
    # Twice the longest a missing pong can go unnoticed: a heartbeat during the call would have fired.
    sleep_s = 2 * (HEARTBEAT_INTERVAL_MS + HEARTBEAT_GRACE_MS) / 1000
    fields: dict[str, Any] = ({"user_params": {"mode": "sleep", "sleep_s": sleep_s}} if which == "phase"
                              else {"step_desc": f"sleep:{sleep_s}"})
    guide = sample_image(seed=4) if which == "execute-only" else None
    wait_until(lambda: compat.worker(name)["state"] == "running", what=f"{name} to be running")
    before = compat.worker(name)
    body = _ok(compat.execute(pid, sample_image(), guide=guide, timeout_ms=60000, **fields))
    assert body["served_by"]["worker_pid"] == before["pid"]
    after = compat.worker(name)
    assert (after["pid"], after["restarts"]) == (before["pid"], before["restarts"])
    # And the heartbeat still works afterwards: a wedged-looking idle worker would be recycled.
    _ok(compat.execute(pid, sample_image(), guide=guide))


# --- the same source on our SDK -------------------------------------------------------------------


@pytest.mark.parametrize("color_space", ["RGB", "BGR"])
def test_phase_source_runs_unchanged_on_our_sdk(compat: Compat, color_space: str) -> None:
    image = sample_image(seed=31)
    ours = _ok(compat.execute(OURS[2], image, color_space=color_space))
    public = _ok(compat.execute(PHASE[2], image, color_space=color_space))
    assert ours["served_by"]["dialect"] == "procvision"
    assert ours["data"]["debug"]["pixels"] == public["data"]["debug"]["pixels"] == expected_facts(image)
    mono = image[..., 0].copy()
    assert _ok(compat.execute(OURS[2], mono))["data"]["debug"]["pixels"] == \
        expected_facts(np.stack([mono, mono, mono], axis=2))


# --- one call at a time, deadlines ----------------------------------------------------------------


def test_concurrent_calls_to_a_public_worker_are_serialised(compat: Compat) -> None:
    """A public adapter answers a second call during a running one with a bare 'busy' (1000): the
    runner must queue it instead, so both callers get their own correct result."""
    images = [sample_image(seed=61), sample_image(seed=62)]
    results: list[httpx.Response | None] = [None, None]

    def run(index: int) -> None:
        with compat.server.client() as client:
            files = {"image": ("a.png", png_bytes(images[index]), "image/png")}
            results[index] = client.post("/execute", data={
                "pid": PHASE[2], "user_params": json.dumps({"mode": "sleep", "sleep_s": 0.5})}, files=files)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for index, response in enumerate(results):
        assert response is not None
        assert _ok(response)["data"]["debug"]["pixels"] == expected_facts(images[index])


def test_public_call_over_its_deadline_is_1005_and_the_worker_recovers(compat: Compat) -> None:
    """The call deadline is what watches a public worker during a call: overrunning it is 1005 with
    the worker recycled, and the version keeps serving."""
    before = compat.worker(PHASE[0])["pid"]
    response = compat.execute(PHASE[2], sample_image(), timeout_ms=800,
                              user_params={"mode": "sleep", "sleep_s": 30})
    assert response.status_code == 504, response.text
    assert response.json()["code"] == "1005"
    image = sample_image(seed=71)
    after = _ok(compat.execute(PHASE[2], image))
    assert after["served_by"]["worker_pid"] != before
    assert after["data"]["debug"]["pixels"] == expected_facts(image)


# --- migrating a station from the public SDK to ours ----------------------------------------------


def test_switch_from_public_sdk_to_ours_and_roll_back(compat: Compat, tmp_path: Path) -> None:
    """The upgrade path: the same algorithm source, repackaged with our SDK as a new version, takes
    over the pid with a switch and sees the same pixels; a rollback returns to the public worker."""
    name, _version, pid = PHASE
    zip_path = build_public_package(tmp_path, sdk="ours", name=name, version="2.0.0", pids=[pid])
    op = install(compat.client, zip_path)
    assert op["state"] == "succeeded", op
    assert compat.show(name, "2.0.0")["dialect"] == "procvision"
    image = sample_image(seed=81)
    try:
        response = compat.client.post("/algorithms/switch", json={"name": name, "version": "2.0.0", "pids": [pid]})
        assert response.status_code == 200, response.text
        ours = _ok(compat.execute(pid, image, color_space="BGR"))
        assert (ours["served_by"]["version"], ours["served_by"]["dialect"]) == ("2.0.0", "procvision")
        assert ours["data"]["debug"]["pixels"] == expected_facts(image)
    finally:
        response = compat.client.post("/algorithms/rollback", json={"pids": [pid]})
        assert response.status_code == 200, response.text
    public = _ok(compat.execute(pid, image, color_space="BGR"))
    assert (public["served_by"]["version"], public["served_by"]["dialect"]) == ("1.0.0", "public-phase")
    assert public["data"]["debug"]["pixels"] == expected_facts(image)
