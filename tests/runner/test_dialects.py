"""Dialect detection, call data per dialect, image handoff and the worker environment."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.shared_memory import read_image_from_shared_memory
from runner.errors import RunnerError
from runner.supervision.dialects import (
    CallRequest,
    Dialect,
    ImageHandoff,
    ImageInput,
    build_call_data,
    detect_dialect,
    worker_environment,
)


def test_detect_dialect_from_hello() -> None:
    ours = protocol.make_hello("1.0.0", protocol.PUBLIC_CAPABILITIES + protocol.EXTENDED_CAPABILITIES)
    assert detect_dialect(ours) is Dialect.PROCVISION
    assert detect_dialect({"capabilities": ["ping", "call", "shutdown", "shared_memory:v1", "info"]}) \
        is Dialect.PUBLIC_PHASE
    assert detect_dialect({"capabilities": ["ping", "call", "shutdown", "shared_memory:v1"]}) is Dialect.PUBLIC_PHASE
    assert detect_dialect({"capabilities": ["ping", "call", "shutdown", "shared_memory:v1", "execute"]}) \
        is Dialect.PUBLIC_EXECUTE_ONLY
    assert detect_dialect({}) is Dialect.PUBLIC_PHASE


def test_phase_data_for_public_worker_uses_files(tmp_path: Path) -> None:
    handoff = ImageHandoff(Dialect.PUBLIC_PHASE, tmp_path / "shm")
    img = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    req = CallRequest("pre", step_index=2, pid="P1", session_id="s", session_context={"a": 1},
                      user_params={"k": 1}, image=ImageInput(array=img, color_space="BGR", camera_id="cam"))
    data = build_call_data(Dialect.PUBLIC_PHASE, req, handoff)
    assert data["phase"] == "pre" and data["step_index"] == 2 and data["pid"] == "P1"
    assert data["session"] == {"id": "s", "context": {"a": 1}} and data["user_params"] == {"k": 1}
    meta = data["image_meta"]
    assert meta["width"] == 4 and meta["height"] == 2 and meta["color_space"] == "BGR" and meta["camera_id"] == "cam"
    path = tmp_path / "shm" / f"{data['shared_mem_id']}.npy"
    assert np.array_equal(np.load(path), img)
    assert "end_session" not in data  # the public protocol has no such field
    handoff.release_all()
    assert not path.exists()


def test_encoded_image_for_public_worker(tmp_path: Path) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((5, 3, 3), dtype=np.uint8)).save(buf, format="PNG")
    handoff = ImageHandoff(Dialect.PUBLIC_PHASE, tmp_path)
    shm_id, meta = handoff.put(ImageInput(encoded=buf.getvalue()))
    assert (tmp_path / f"{shm_id}.bin").read_bytes() == buf.getvalue()
    assert (meta["width"], meta["height"]) == (3, 5)
    handoff.release_all()
    assert not (tmp_path / f"{shm_id}.bin").exists()
    with pytest.raises(RunnerError) as info:
        handoff.put(ImageInput(encoded=b"not an image"))
    assert info.value.code == "1002"


def test_our_worker_gets_posix_segments(tmp_path: Path) -> None:
    handoff = ImageHandoff(Dialect.PROCVISION, tmp_path)
    img = np.full((3, 2, 3), 7, dtype=np.uint8)
    data = build_call_data(Dialect.PROCVISION, CallRequest("execute", session_id="s", end_session=True,
                                                           image=ImageInput(array=img)), handoff)
    shm_id = data["shared_mem_id"]
    assert shm_id.startswith("pvshm-") and data["end_session"] is True
    assert np.array_equal(read_image_from_shared_memory(shm_id, data["image_meta"]), img)
    assert handoff.held_ids() == [shm_id]
    handoff.release_all()
    assert handoff.held_ids() == []
    with pytest.raises(Exception):  # noqa: B017 - any "not found" error of the SDK reader
        read_image_from_shared_memory(shm_id, data["image_meta"])


def test_execute_only_data_and_refusals(tmp_path: Path) -> None:
    handoff = ImageHandoff(Dialect.PUBLIC_EXECUTE_ONLY, tmp_path)
    cur = ImageInput(array=np.zeros((2, 2, 3), dtype=np.uint8))
    guide = ImageInput(array=np.ones((2, 2, 3), dtype=np.uint8))
    data = build_call_data(Dialect.PUBLIC_EXECUTE_ONLY,
                           CallRequest("execute", step_index=3, step_desc="d", guide_info=[{"label": "x"}],
                                       image=cur, guide_image=guide), handoff)
    assert set(data) == {"step_index", "step_desc", "guide_info", "cur_image_shm_id", "cur_image_meta",
                         "guide_image_shm_id", "guide_image_meta"}
    assert data["step_index"] == 3 and data["guide_info"] == [{"label": "x"}]
    assert len(os.listdir(tmp_path)) == 2
    handoff.release_all()
    assert os.listdir(tmp_path) == []
    for phase in ("pre", "info"):
        with pytest.raises(RunnerError) as info:
            build_call_data(Dialect.PUBLIC_EXECUTE_ONLY, CallRequest(phase), handoff)
        assert info.value.code == "1003"
    with pytest.raises(RunnerError):
        build_call_data(Dialect.PUBLIC_EXECUTE_ONLY, CallRequest("execute", image=cur), handoff)


def test_bad_requests_are_rejected(tmp_path: Path) -> None:
    handoff = ImageHandoff(Dialect.PUBLIC_PHASE, tmp_path)
    with pytest.raises(RunnerError) as info:
        build_call_data(Dialect.PUBLIC_PHASE, CallRequest("run"), handoff)
    assert info.value.code == "1003"
    with pytest.raises(RunnerError) as info:
        handoff.put(ImageInput(array=np.zeros((2, 2, 3), dtype=np.uint8), color_space="HSV"))
    assert info.value.code == "1008"
    with pytest.raises(RunnerError):
        handoff.put(ImageInput())


def test_worker_environment_is_scrubbed(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "PYTHONPATH": "/x", "PYTHONHOME": "/y", "PYTHONUSERBASE": "/z",
            "PROC_ENTRY_POINT": "evil:Algo", "LANG": "C.UTF-8"}
    env = worker_environment(base, tmp_path / "pkg", tmp_path / "shm", 1 << 20)
    assert env["PATH"] == "/usr/bin" and env["LANG"] == "C.UTF-8"
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PROC_ENTRY_POINT"):
        assert key not in env
    assert env["PYTHONNOUSERSITE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["PROC_ALGO_ROOT"] == str(tmp_path / "pkg") and env["PROC_SHM_DIR"] == str(tmp_path / "shm")
    assert env["PROC_MAX_FRAME_BYTES"] == str(1 << 20)
