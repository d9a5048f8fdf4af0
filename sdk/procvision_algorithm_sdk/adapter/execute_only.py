"""Serve one ``call`` to an execute-only algorithm (public SDK 0.3.x call shape).

The call's ``data`` is ``{step_index, step_desc, guide_info, cur_image_shm_id, cur_image_meta,
guide_image_shm_id, guide_image_meta}``. Both images are read here (our shared memory segments, or
the public development ids) and passed to ``execute`` as H x W x 3 uint8 RGB arrays; the algorithm's
``error_code`` is kept in the reply, which the public adapter drops.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from .. import protocol
from ..base import BaseAlgorithm
from ..errors import ErrorCode
from ..logger import StructuredLogger
from ..session import Session
from ..shared_memory import read_image_from_shared_memory
from .calls import CallRejected, error_frame, field, result_frame

#: Keys of ``manifest.json`` that describe the algorithm in an ``info`` reply.
_INFO_KEYS = ("name", "version", "description", "supported_pids", "steps")


def manifest_info(env: Mapping[str, str], cwd: str) -> dict[str, Any] | None:
    """``get_info()``-shaped facts from ``manifest.json`` in ``cwd`` or ``$PROC_ALGO_ROOT``, or None.

    Execute-only algorithms need not implement ``get_info``; the manifest says the same things.
    """
    for root in (cwd, env.get("PROC_ALGO_ROOT") or ""):
        path = os.path.join(root, "manifest.json") if root else ""
        if not path or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as fh:
                manifest = json.load(fh)
        except (OSError, ValueError):
            return None
        if isinstance(manifest, dict):
            info = {key: manifest[key] for key in _INFO_KEYS if key in manifest}
            info.setdefault("supported_pids", [])
            info.setdefault("steps", [])
            return info
    return None


def implements_get_info(algorithm: BaseAlgorithm) -> bool:
    """True if the algorithm's class overrides ``get_info``."""
    return type(algorithm).get_info is not BaseAlgorithm.get_info


class ExecuteOnlyHandler:
    """Executes execute-only calls for one algorithm instance (no sessions: the style has none)."""

    def __init__(self, algorithm: BaseAlgorithm, logger: StructuredLogger,
                 fallback_info: dict[str, Any] | None) -> None:
        self.algorithm = algorithm
        self.logger = logger
        self.fallback_info = fallback_info

    def handle(self, request_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """The reply frame for one call; raises CallRejected for unusable call data."""
        phase = data.get("phase")
        if phase == "info":
            return self._info(request_id)
        if phase not in (None, "execute"):
            raise CallRejected(f"this algorithm is written in the execute-only style: it has no {phase!r} "
                               "phase; send execute calls only", ErrorCode.INVALID_PARAMS)
        step_index = field(data, "step_index", int, 1)
        step_desc = field(data, "step_desc", str, "")
        guide_info = data.get("guide_info")
        if guide_info is None:
            guide_info = []
        images = []
        for which in ("cur_image", "guide_image"):
            shm_id = field(data, f"{which}_shm_id", str, "")
            meta = field(data, f"{which}_meta", dict, {})
            if not shm_id:
                raise CallRejected(f"execute-only call needs '{which}_shm_id' (and '{which}_meta'): this "
                                   "algorithm receives the current and the guide image",
                                   ErrorCode.INVALID_PARAMS)
            try:
                images.append(read_image_from_shared_memory(shm_id, meta))
            except Exception as exc:  # noqa: BLE001 - coded SDK errors keep their code, others become 1009
                return error_frame(request_id, exc, f"reading {which} {shm_id!r}", self.logger)
        cur_image, guide_image = images
        return self._run(request_id, step_index, step_desc, cur_image, guide_image, guide_info)

    def _run(self, request_id: str, step_index: int, step_desc: str, cur_image: Any, guide_image: Any,
             guide_info: Any) -> dict[str, Any]:
        alg = self.algorithm
        # The hooks of our BaseAlgorithm still run; the session lives for this call only.
        session = Session("")
        try:
            alg.on_step_start(step_index, session, {"phase": "execute", "step_desc": step_desc})
        except Exception as exc:  # noqa: BLE001 - algorithm code: any failure becomes a reply
            return error_frame(request_id, exc, "on_step_start()", self.logger)
        try:
            result = alg.execute(step_index, step_desc, cur_image, guide_image, guide_info)
        except Exception as exc:  # noqa: BLE001 - algorithm code: any failure becomes a reply
            return error_frame(request_id, exc, "execute()", self.logger)
        if not isinstance(result, dict):
            raise CallRejected(f"execute() returned {type(result).__name__}, expected a dict",
                               ErrorCode.INVALID_RESULT)
        try:
            alg.on_step_finish(step_index, session, result)
        except Exception as exc:  # noqa: BLE001 - algorithm code: any failure becomes a reply
            return error_frame(request_id, exc, "on_step_finish()", self.logger)
        return result_frame(request_id, "execute", step_index, result, "execute()")

    def _info(self, request_id: str) -> dict[str, Any]:
        if implements_get_info(self.algorithm):
            try:
                info = self.algorithm.get_info()
            except Exception as exc:  # noqa: BLE001 - algorithm code: any failure becomes a reply
                return error_frame(request_id, exc, "get_info()", self.logger)
            if not isinstance(info, dict):
                raise CallRejected(f"get_info() returned {type(info).__name__}, expected a dict",
                                   ErrorCode.INVALID_RESULT)
        elif self.fallback_info is not None:
            info = dict(self.fallback_info)
        else:
            raise CallRejected("this execute-only algorithm has no get_info() and no manifest.json was found "
                               "next to it", ErrorCode.NOT_INITIALIZED)
        return protocol.make_result(request_id, "OK", "", {"phase": "info", "step_index": 0, "info": info})
