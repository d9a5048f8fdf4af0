"""Algorithms in the public SDK 0.3.x style (one ``execute`` with two images) on our SDK."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from procvision_algorithm_sdk import BaseAlgorithm
from procvision_algorithm_sdk.client import AdapterClient
from procvision_algorithm_sdk.protocol import EXECUTE_ONLY_CAPABILITY
from procvision_algorithm_sdk.shared_memory import ImageSegment
from procvision_algorithm_sdk.styles import EXECUTE_ONLY, PHASE, StyleError
from tests.support.algorithms import algorithm_source
from tests.support.waiting import wait_until

from .conftest import write_algo

Start = Callable[..., AdapterClient]

#: The execute-only reference double: compares the two images; ``step_desc`` provokes "raise" (a
#: ProgramError), "code" (status ERROR 1002) and "print" (noise on stdout).
EXECUTE_ONLY_SOURCE = algorithm_source(
    style="execute_only", class_name="Algo", imports="import numpy as np", sdk_names=["ProgramError"],
    execute="""
        if step_desc == "raise":
            raise ProgramError("model crashed", error_code="1009")
        if step_desc == "code":
            return {"status": "ERROR", "message": "image too dark", "error_code": "1002"}
        if step_desc == "print":
            print("spam-to-stdout")
        diff = np.argwhere(np.any(cur_image != guide_image, axis=2))
        return {"status": "OK", "data": {
            "result_status": "NG" if len(diff) else "OK",
            "ng_reason": "differs" if len(diff) else None,
            "defect_rects": [{"x": int(x), "y": int(y), "width": 1, "height": 1} for y, x in diff[:20]],
            "debug": {"cur": list(cur_image.shape), "guide": list(guide_image.shape),
                      "cur_first": [int(v) for v in cur_image[0, 0]],
                      "guide_first": [int(v) for v in guide_image[0, 0]],
                      "guide_info": guide_info, "step_desc": step_desc}}}
    """)


def _manifest(folder: Path) -> None:
    (folder / "manifest.json").write_text(json.dumps({
        "name": "eo-algo", "version": "0.3.0", "entry_point": "algo:Algo", "description": "execute-only"}),
        encoding="utf-8")


def _call(client: AdapterClient, cur: ImageSegment, guide: ImageSegment, step_desc: str = "look",
          guide_info: Any = None) -> dict[str, Any]:
    data = {"step_index": 2, "step_desc": step_desc, "guide_info": guide_info or [],
            "cur_image_shm_id": cur.id, "cur_image_meta": cur.image_meta(),
            "guide_image_shm_id": guide.id, "guide_image_meta": guide.image_meta()}
    return client.call(data, timeout=30.0)


# --- style detection ------------------------------------------------------------------------------

def test_execute_only_class_instantiates_without_get_info_or_pre_execute() -> None:
    class Eo(BaseAlgorithm):
        def execute(self, step_index: int, step_desc: str, cur_image: Any, guide_image: Any,
                    guide_info: Any) -> dict[str, Any]:
            return {"status": "OK", "data": {"result_status": "OK"}}

    assert Eo.algorithm_style() == EXECUTE_ONLY
    assert Eo().execute(1, "", None, None, [])["status"] == "OK"


def test_phase_class_without_pre_execute_still_fails_to_instantiate() -> None:
    class Half(BaseAlgorithm):
        def get_info(self) -> dict[str, Any]:
            return {}

        def execute(self, step_index: int, pid: str, session: Any, user_params: Any, shared_mem_id: str,
                    image_meta: Any) -> dict[str, Any]:
            return {}

    assert Half.algorithm_style() == PHASE
    with pytest.raises(TypeError, match="pre_execute"):
        Half()


def test_declared_style_wins_and_unclear_signatures_say_how_to_declare() -> None:
    class Declared(BaseAlgorithm):
        execution_style = "execute-only"

        def execute(self, a: Any, b: Any, c: Any, d: Any, e: Any, f: Any) -> dict[str, Any]:
            return {}

    assert Declared.algorithm_style() == EXECUTE_ONLY
    Declared()

    class Unclear(BaseAlgorithm):
        def execute(self, *args: Any) -> dict[str, Any]:
            return {}

    with pytest.raises(StyleError, match="execution_style"):
        Unclear()

    class Wrong(BaseAlgorithm):
        execution_style = "both"

        def execute(self, *args: Any) -> dict[str, Any]:
            return {}

    with pytest.raises(StyleError, match="'phase' or 'execute-only'"):
        Wrong()


def test_positional_count_decides_when_names_say_nothing() -> None:
    class FiveArgs(BaseAlgorithm):
        def execute(self, a: Any, b: Any, c: Any, d: Any, e: Any) -> dict[str, Any]:
            return {}

    assert FiveArgs.algorithm_style() == EXECUTE_ONLY


# --- served by the adapter --------------------------------------------------------------------------

def test_adapter_serves_both_images_from_our_shared_memory(start_client: Start, tmp_path: Path,
                                                            shm_dir: Path) -> None:
    folder = write_algo(tmp_path / "eo", source=EXECUTE_ONLY_SOURCE)
    _manifest(folder)
    client = start_client(folder)
    hello = client.hello
    assert hello is not None
    assert "execute" in hello["capabilities"] and EXECUTE_ONLY_CAPABILITY in hello["capabilities"]
    assert "pv:sessions:v1" not in hello["capabilities"]
    assert hello["algorithm_style"] == "execute-only"
    assert hello["algorithm"] == {"name": "eo-algo", "version": "0.3.0"}
    cur_px = np.full((6, 8, 3), 200, dtype=np.uint8)
    cur_px[3, 5] = (10, 20, 30)
    guide_px = np.full((6, 8, 3), 200, dtype=np.uint8)
    with ImageSegment.create_array(cur_px, str(shm_dir)) as cur, \
            ImageSegment.create_array(guide_px, str(shm_dir)) as guide:
        reply = _call(client, cur, guide, guide_info=[{"label": "screw", "posList": [{"x": 1, "y": 2,
                                                                                        "width": 3, "height": 4}]}])
    assert reply["type"] == "result" and reply["status"] == "OK", reply
    data = reply["data"]
    assert data["step_index"] == 2 and data["result_status"] == "NG"
    assert data["defect_rects"] == [{"x": 5, "y": 3, "width": 1, "height": 1}]
    assert data["debug"]["cur_first"] == [200, 200, 200] and data["debug"]["guide"] == [6, 8, 3]
    assert data["debug"]["guide_info"][0]["label"] == "screw"


def test_error_code_of_the_algorithm_reaches_the_caller(start_client: Start, tmp_path: Path,
                                                        shm_dir: Path) -> None:
    folder = write_algo(tmp_path / "eo", source=EXECUTE_ONLY_SOURCE)
    client = start_client(folder)
    px = np.zeros((4, 4, 3), dtype=np.uint8)
    with ImageSegment.create_array(px, str(shm_dir)) as cur, ImageSegment.create_array(px, str(shm_dir)) as guide:
        returned = _call(client, cur, guide, step_desc="code")
        raised = _call(client, cur, guide, step_desc="raise")
    assert returned["status"] == "ERROR" and returned["error_code"] == "1002", returned
    assert returned["error_name"] == "image_load_failed"
    assert raised["type"] == "error" and raised["error_code"] == "1009" and "model crashed" in raised["message"]


def test_missing_runner_image_is_1007_and_missing_guide_id_is_1003(start_client: Start, tmp_path: Path,
                                                                   shm_dir: Path) -> None:
    client = start_client(write_algo(tmp_path / "eo", source=EXECUTE_ONLY_SOURCE))
    gone = {"step_index": 1, "cur_image_shm_id": "pvshm-" + "0" * 32, "cur_image_meta": {"width": 4, "height": 4},
            "guide_image_shm_id": "pvshm-" + "1" * 32, "guide_image_meta": {"width": 4, "height": 4}}
    reply = client.call(gone, timeout=30.0)
    assert reply["type"] == "error" and reply["error_code"] == "1007", reply
    no_guide = {"step_index": 1, "cur_image_shm_id": "dev-shm:x", "cur_image_meta": {"width": 4, "height": 4}}
    reply = client.call(no_guide, timeout=30.0)
    assert reply["type"] == "error" and reply["error_code"] == "1003" and "guide_image_shm_id" in reply["message"]


def test_info_comes_from_the_manifest_and_pre_is_refused(start_client: Start, tmp_path: Path) -> None:
    folder = write_algo(tmp_path / "eo", source=EXECUTE_ONLY_SOURCE)
    _manifest(folder)
    client = start_client(folder)
    info = client.call({"phase": "info"}, timeout=30.0)
    assert info["status"] == "OK" and info["data"]["info"]["name"] == "eo-algo"
    assert info["data"]["info"]["supported_pids"] == []
    pre = client.call({"phase": "pre", "step_index": 1}, timeout=30.0)
    assert pre["type"] == "error" and pre["error_code"] == "1003" and "execute-only" in pre["message"]


def test_development_ids_read_as_black_images_like_the_public_sdk(start_client: Start, tmp_path: Path) -> None:
    client = start_client(write_algo(tmp_path / "eo", source=EXECUTE_ONLY_SOURCE))
    data = {"step_index": 1, "step_desc": "s", "guide_info": [],
            "cur_image_shm_id": "dev-shm:s1:cur", "cur_image_meta": {"width": 3, "height": 2},
            "guide_image_shm_id": "dev-shm:s1:guide", "guide_image_meta": {"width": 3, "height": 2}}
    reply = client.call(data, timeout=30.0)
    assert reply["status"] == "OK" and reply["data"]["debug"]["cur"] == [2, 3, 3], reply


def test_phase_algorithm_refuses_an_execute_only_call(start_client: Start, algo_dir: Path) -> None:
    client = start_client(algo_dir)
    data = {"step_index": 1, "cur_image_shm_id": "dev-shm:a", "cur_image_meta": {},
            "guide_image_shm_id": "dev-shm:b", "guide_image_meta": {}}
    reply = client.call(data, timeout=30.0)
    assert reply["type"] == "error" and reply["error_code"] == "1003" and "phase style" in reply["message"]


@pytest.mark.parametrize("strict", [False, True])
def test_stdout_in_a_call_fails_it_only_in_strict_mode(start_client: Start, tmp_path: Path, strict: bool) -> None:
    env = {"PROC_STRICT_STDIO": "1"} if strict else {"PROC_STRICT_STDIO": ""}
    client = start_client(write_algo(tmp_path / "eo", source=EXECUTE_ONLY_SOURCE), env=env)
    data = {"step_index": 1, "step_desc": "print", "guide_info": [],
            "cur_image_shm_id": "dev-shm:c", "cur_image_meta": {"width": 1, "height": 1},
            "guide_image_shm_id": "dev-shm:g", "guide_image_meta": {"width": 1, "height": 1}}
    reply = client.call(data, timeout=30.0)
    if strict:
        assert reply["type"] == "error" and reply["error_code"] == "1010", reply
        assert reply["stdout_bytes"] == len("spam-to-stdout\n")
        # The next call that prints nothing is served normally.
        data["step_desc"] = "quiet"
        assert client.call(data, timeout=30.0)["status"] == "OK"
    else:
        assert reply["type"] == "result" and reply["status"] == "OK", reply
    # Either way the text is kept in the worker's log.
    wait_until(lambda: any("spam-to-stdout" in line for line in client.stderr_tail), what="the print on stderr")
