"""Algorithm packages built the way the PUBLIC ProcVision SDK's ``procvision-cli package`` builds them.

The public packager (0.0.7 and 0.3.x alike) writes ``<name>-v<version>-offline.zip`` holding:

* ``<project_dir>/...``: every file of the project folder (sources, ``manifest.json``,
  ``requirements.txt``, ``requirements.sanitized.txt``, ``.procvision_env.json``), under the name of
  the project FOLDER, which need not be the algorithm's name;
* ``wheels/*.whl`` at the archive ROOT (not inside the project folder);
* every entry deflated (wheels too), no directory entries; zips made on Windows carry DOS
  attributes only (``create_system`` 0).

``tests.support.packages.build_package(layout="public")`` covers the common case for other tests;
this module adds what the compatibility tests need on top: the project-folder name, Windows-made
entries, the public SDK wheels from ``.cache/public-sdk/<version>/``, and the two reference
algorithms written against the public APIs (``phase_source`` for 0.0.6/0.0.7,
``execute_only_source`` for 0.3.x). Both report "pixel facts" (shape, per-channel mean, values at
fixed points, a checksum) so tests can prove the algorithm saw exactly the pixels that were sent.
"""

from __future__ import annotations

import hashlib
import json
import stat
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from procvision_algorithm_sdk.wheel_builder import build_sdk_wheel

from . import wheels as wheel_cache
from .algorithms import algorithm_source
from .packages import manifest_for

PHASE_SDK = "0.0.7"
EXECUTE_ONLY_SDK = "0.3.2"

#: Shared by both reference algorithms (plain numpy, no SDK import), pasted into their sources.
PIXEL_FACTS_SOURCE = '''
def pixel_facts(image):
    """What the algorithm saw: enough to prove every pixel and the channel order."""
    arr = np.ascontiguousarray(np.asarray(image))
    h, w = int(arr.shape[0]), int(arr.shape[1])
    points = [(0, 0), (h - 1, w - 1), (h // 2, w // 3), (h // 3, w - 1)]
    return {
        "shape": [int(s) for s in arr.shape],
        "dtype": str(arr.dtype),
        "mean": [round(float(arr[..., c].mean()), 6) for c in range(arr.shape[2])] if arr.ndim == 3
        else [round(float(arr.mean()), 6)],
        "points": {f"{y},{x}": np.atleast_1d(arr[y, x]).astype(int).tolist() for y, x in points},
        "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
    }
'''

_IMPORTS = """
import hashlib
import os
import time

import numpy as np
"""

#: What both report about the worker's shared-memory folder (proof of which folder it was given).
_SHM_FACTS = """"worker_pid": os.getpid(), "shm_dir": os.environ.get("PROC_SHM_DIR", ""),
                          "shm_files": sorted(os.listdir(os.environ["PROC_SHM_DIR"]))
                          if os.path.isdir(os.environ.get("PROC_SHM_DIR", "")) else []"""


def phase_source(name: str, version: str, pids: Iterable[str]) -> str:
    """The phase-era (public SDK 0.0.6/0.0.7) reference algorithm, in that SDK's own style, for this
    name/version/pids. ``user_params["mode"]`` provokes behaviours: "sleep" (``sleep_s``), "print"
    (print() of ``text`` into stdout), "fail" (status ERROR with error_code 1003), "raise" (an exception)."""
    mode_param = {"key": "mode", "type": "string", "required": False}
    info = {"name": name, "version": version, "description": "pixel facts (phase era)", "supported_pids": list(pids),
            "steps": [{"index": 1, "name": "inspect", "params": [mode_param]}]}
    return algorithm_source(
        info=info, imports=_IMPORTS, prelude=PIXEL_FACTS_SOURCE, sdk_names=["read_image_from_shared_memory"],
        methods="""
            def _act(self, user_params):
                mode = user_params.get("mode", "")
                if mode == "sleep":
                    time.sleep(float(user_params.get("sleep_s", 1)))
                if mode == "print":
                    print(user_params.get("text", "algorithm debug output: checking the part now"))
                if mode == "raise":
                    raise RuntimeError("algorithm blew up on purpose")
                return mode
        """,
        pre_execute="""
            self._act(user_params)
            image = read_image_from_shared_memory(shared_mem_id, image_meta)
            return {"status": "OK", "message": "pre ok",
                    "data": {"calibration_rects": [], "debug": {"pixels": pixel_facts(image)}}}
        """,
        execute=f"""
            mode = self._act(user_params)
            if mode == "fail":
                return {{"status": "ERROR", "message": "asked to fail", "error_code": "1003"}}
            image = read_image_from_shared_memory(shared_mem_id, image_meta)
            return {{"status": "OK", "message": "inspected", "data": {{
                "result_status": "OK", "defect_rects": [],
                "debug": {{"pixels": pixel_facts(image), "image_meta": image_meta, "pid": pid,
                          "step_index": step_index,
                          {_SHM_FACTS}}}}}}}
        """)


def execute_only_source() -> str:
    """The execute-only (public SDK 0.3.x) reference algorithm, in that SDK's style (it has no
    get_info: nothing to fill in). ``step_desc`` provokes behaviours: "sleep:<s>", "print", "fail",
    "raise"; anything else is just echoed."""
    return algorithm_source(
        style="execute_only", imports=_IMPORTS, prelude=PIXEL_FACTS_SOURCE,
        execute=f"""
            if step_desc.startswith("sleep:"):
                time.sleep(float(step_desc.split(":", 1)[1]))
            if step_desc == "print":
                print("algorithm debug output: checking the part now")
            if step_desc == "raise":
                raise RuntimeError("algorithm blew up on purpose")
            if step_desc == "fail":
                return {{"status": "ERROR", "message": "asked to fail", "error_code": "1003"}}
            return {{"status": "OK", "message": "inspected", "data": {{
                "result_status": "OK", "defect_rects": [],
                "debug": {{"cur": pixel_facts(cur_image), "guide": pixel_facts(guide_image),
                          "step_index": step_index, "step_desc": step_desc, "guide_info": guide_info,
                          {_SHM_FACTS}}}}}}}
        """)


def public_sdk_wheels(sdk_version: str) -> list[Path]:
    """The public SDK wheel of ``sdk_version`` and its dependencies' wheels, from the cache."""
    wheel_cache.ensure()
    folder = wheel_cache.PUBLIC_SDK / sdk_version
    found = sorted(folder.glob("*.whl"))
    if not any(p.name.startswith(f"procvision_algorithm_sdk-{sdk_version}-") for p in found):
        raise FileNotFoundError(f"no public SDK {sdk_version} wheel in {folder}; run python -m tests.support.wheels")
    return found


def default_env_config() -> dict[str, Any]:
    """``.procvision_env.json`` as the public packager writes it for the running interpreter."""
    major, minor = sys.version_info[:2]
    return {"python_version": f"{major}.{minor}", "implementation": "cp", "abi": f"cp{major}{minor}",
            "wheels_platform": "manylinux2014_x86_64", "auto_freeze": True}


def build_public_package(
    dest: Path,
    *,
    sdk: str,
    name: str = "pub_algo",
    version: str = "1.0.0",
    pids: Iterable[str] = ("P001",),
    source: str | None = None,
    project_dir: str | None = None,
    requirements: str | None = None,
    env_config: Mapping[str, Any] | None = None,
    wheels: Iterable[Path] | None = None,
    extra_files: Mapping[str, str] | None = None,
    windows_made: bool = False,
) -> Path:
    """Write ``<name>-v<version>-offline.zip`` into ``dest`` as the public packager lays it out.

    ``sdk`` is "0.0.7", "0.3.2" (public wheels from the cache) or "ours" (this checkout's SDK wheel
    plus the cached numpy wheel: the same source packaged for our SDK). ``source`` defaults to the
    reference algorithm of the SDK's era; it lives in ``algorithm/main.py`` (the public template's
    module). ``wheels`` replaces the wheel list entirely; ``windows_made`` writes DOS-only entry
    attributes like a zip made on Windows.
    """
    dest.mkdir(parents=True, exist_ok=True)
    pids = list(pids)
    if source is None:
        source = execute_only_source() if sdk.startswith("0.3") else phase_source(name, version, pids)
    if wheels is None:
        if sdk == "ours":
            from .packages import runtime_wheels

            wheels = [build_sdk_wheel(dest / ".sdk-wheel"), *runtime_wheels()]
        else:
            wheels = public_sdk_wheels(sdk)
    wheel_list = list(wheels)
    if requirements is None:
        pin = "" if sdk == "ours" else f"=={sdk}"
        requirements = f"procvision_algorithm_sdk{pin}\nnumpy\n"
    manifest = manifest_for(name=name, version=version, pids=pids, entry_point="algorithm.main:Algorithm",
                            description="public-SDK compatibility package")
    if sdk.startswith("0.3"):
        manifest.pop("steps", None)  # the 0.3.x template's manifest has no steps
    top = project_dir or name
    files: dict[str, bytes] = {
        "manifest.json": json.dumps(manifest, ensure_ascii=False, indent=2).encode(),
        "requirements.txt": requirements.encode(),
        # The packager strips hashes into this file and downloads from it.
        "requirements.sanitized.txt": "".join(line.split("#sha256=")[0].strip() + "\n"
                                              for line in requirements.splitlines() if line.strip()).encode(),
        ".procvision_env.json": json.dumps(dict(env_config) if env_config is not None
                                           else default_env_config(), indent=2).encode(),
        "algorithm/__init__.py": b"",
        "algorithm/main.py": source.encode(),
    }
    for rel, text in (extra_files or {}).items():
        files[rel] = text.encode()
    target = dest / f"{name}-v{version}-offline.zip"
    tmp = target.with_name(target.name + ".building")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel, data in sorted(files.items()):
            zf.writestr(_entry(f"{top}/{rel}", windows_made), data)
        for wheel in wheel_list:
            zf.writestr(_entry(f"wheels/{wheel.name}", windows_made), wheel.read_bytes())
    tmp.replace(target)
    return target


def _entry(arcname: str, windows_made: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=(2025, 6, 1, 12, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    if windows_made:
        info.create_system = 0
        info.external_attr = 0x20  # FILE_ATTRIBUTE_ARCHIVE, as Windows zips mark files
    else:
        info.create_system = 3
        info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


def sample_image(height: int = 37, width: int = 53, seed: int = 7) -> np.ndarray:
    """An RGB uint8 image whose three channels all differ, so a swapped channel order shows."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    img[..., 0] = (img[..., 0] // 2) + 128  # R bright
    img[..., 2] = img[..., 2] // 4  # B dark
    return img


def expected_facts(image: np.ndarray) -> dict[str, Any]:
    """The pixel facts of ``image``, computed here (not by the algorithm's code) for comparison."""
    arr = np.ascontiguousarray(image)
    h, w = arr.shape[:2]
    points = [(0, 0), (h - 1, w - 1), (h // 2, w // 3), (h // 3, w - 1)]
    channels = arr.shape[2] if arr.ndim == 3 else 1
    return {
        "shape": list(arr.shape),
        "dtype": "uint8",
        "mean": [round(float(arr[..., c].mean()), 6) for c in range(channels)] if arr.ndim == 3
        else [round(float(arr.mean()), 6)],
        "points": {f"{y},{x}": [int(v) for v in np.atleast_1d(arr[y, x])] for y, x in points},
        "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
    }


def png_bytes(image: np.ndarray) -> bytes:
    """``image`` (H x W x 3 RGB or H x W mono) as PNG bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()
