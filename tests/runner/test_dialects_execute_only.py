"""Our SDK serving an execute-only algorithm: detected from hello, both images in shared memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.shared_memory import read_image_from_shared_memory
from runner.errors import RunnerError
from runner.supervision.dialects import (
    EXECUTE_ONLY_VALUES,
    CallRequest,
    Dialect,
    ImageHandoff,
    ImageInput,
    build_call_data,
    detect_dialect,
)


def test_execute_plus_pv_capabilities_is_our_execute_only_dialect() -> None:
    hello = protocol.make_hello("1.0.0", protocol.hello_capabilities("execute-only"))
    dialect = detect_dialect(hello)
    assert dialect is Dialect.PROCVISION_EXECUTE_ONLY and dialect.ours and dialect.execute_only
    assert detect_dialect(protocol.make_hello("1.0.0", protocol.hello_capabilities("phase"))) is Dialect.PROCVISION
    assert not Dialect.PUBLIC_EXECUTE_ONLY.ours and Dialect.PUBLIC_EXECUTE_ONLY.execute_only
    assert {"public-execute-only", "procvision-execute-only"} == EXECUTE_ONLY_VALUES


def test_both_images_go_into_shared_memory_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handoff = ImageHandoff(Dialect.PROCVISION_EXECUTE_ONLY, tmp_path / "files", posix_dir=tmp_path / "posix")
    (tmp_path / "posix").mkdir()
    cur = np.zeros((4, 6, 3), dtype=np.uint8)
    cur[1, 2] = (9, 8, 7)
    guide = np.full((4, 6, 3), 200, dtype=np.uint8)
    request = CallRequest("execute", step_index=3, step_desc="lid", guide_info=[{"label": "lid", "posList": []}],
                          image=ImageInput(array=cur), guide_image=ImageInput(array=guide))
    data = build_call_data(Dialect.PROCVISION_EXECUTE_ONLY, request, handoff)
    try:
        assert data["step_index"] == 3 and data["step_desc"] == "lid" and data["guide_info"][0]["label"] == "lid"
        assert data["cur_image_shm_id"].startswith("pvshm-") and data["guide_image_shm_id"].startswith("pvshm-")
        assert not (tmp_path / "files").exists()  # no public image files for our workers
        monkeypatch.setenv("PROC_SHM_POSIX_DIR", str(tmp_path / "posix"))
        got_cur = read_image_from_shared_memory(data["cur_image_shm_id"], data["cur_image_meta"])
        got_guide = read_image_from_shared_memory(data["guide_image_shm_id"], data["guide_image_meta"])
        assert got_cur is not None and got_cur[1, 2].tolist() == [9, 8, 7]
        assert got_guide is not None and int(got_guide.min()) == 200
    finally:
        handoff.close()
    assert not list((tmp_path / "posix").iterdir())


def test_info_is_allowed_for_ours_pre_is_refused_for_both(tmp_path: Path) -> None:
    handoff = ImageHandoff(Dialect.PROCVISION_EXECUTE_ONLY, tmp_path)
    assert build_call_data(Dialect.PROCVISION_EXECUTE_ONLY, CallRequest("info"), handoff) == \
        {"phase": "info", "step_index": 0}
    for dialect in (Dialect.PROCVISION_EXECUTE_ONLY, Dialect.PUBLIC_EXECUTE_ONLY):
        with pytest.raises(RunnerError) as exc:
            build_call_data(dialect, CallRequest("pre"), ImageHandoff(dialect, tmp_path))
        assert exc.value.code == "1003" and "execute-only" in exc.value.message
    with pytest.raises(RunnerError, match="guide image"):
        build_call_data(Dialect.PROCVISION_EXECUTE_ONLY,
                        CallRequest("execute", image=ImageInput(array=np.zeros((2, 2, 3), np.uint8))), handoff)
