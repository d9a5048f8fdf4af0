"""Two ways to talk to an algorithm with the same interface: in this process, or through an adapter.

``validate`` runs the same checks through either; ``run`` uses the adapter. Both return what the
algorithm returned (``{status, message, error_code?, data}``), so schema checks apply unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..base import BaseAlgorithm
from ..client import AdapterClient, CallTimedOut, WorkerFailure, adapter_argv
from ..errors import ProcVisionError
from ..session import Session

#: Keys the adapter adds to a result frame's data; they are not part of what the algorithm returned.
_FRAME_KEYS = ("phase", "step_index")


class DriverError(Exception):
    """The algorithm could not be reached or raised; ``message`` says why."""


class InProcessDriver:
    """Calls an algorithm instance directly, keeping one Session per session id like the adapter does."""

    def __init__(self, algorithm: BaseAlgorithm) -> None:
        self.algorithm = algorithm
        self._sessions: dict[str, Session] = {}

    def _session(self, session_id: str) -> Session:
        if session_id not in self._sessions:
            self._sessions[session_id] = Session(session_id, {})
        return self._sessions[session_id]

    def info(self) -> Any:
        return self.algorithm.get_info()

    def call(self, phase: str, step_index: int, pid: str, session_id: str, user_params: dict[str, Any],
             shm_id: str, image_meta: dict[str, Any]) -> Any:
        session = self._session(session_id)
        context = {"pid": pid, "phase": phase, "trace_id": session_id}
        self.algorithm.on_step_start(step_index, session, context)
        method = self.algorithm.pre_execute if phase == "pre" else self.algorithm.execute
        try:
            result = method(step_index, pid, session, dict(user_params), shm_id, dict(image_meta))
        except ProcVisionError as exc:
            return {"status": "ERROR", "message": exc.message, "error_code": exc.error_code, "data": {}}
        if isinstance(result, dict):
            self.algorithm.on_step_finish(step_index, session, result)
        return result

    def end_session(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self.algorithm.reset(session)


def frame_to_result(frame: dict[str, Any]) -> dict[str, Any]:
    """Turn an adapter ``result``/``error`` frame back into the algorithm's own result shape."""
    if frame.get("type") == "error":
        return {"status": "ERROR", "message": str(frame.get("message", "")),
                "error_code": str(frame.get("error_code", "")), "data": {}}
    data = frame.get("data")
    data = {k: v for k, v in data.items() if k not in _FRAME_KEYS} if isinstance(data, dict) else data
    result: dict[str, Any] = {"status": frame.get("status"), "message": frame.get("message", ""), "data": data}
    if frame.get("error_code") is not None:
        result["error_code"] = frame.get("error_code")
    return result


class AdapterDriver:
    """Talks to ``python -m procvision_algorithm_sdk.adapter`` started in the project folder.

    Every wait has a deadline; ``close()`` shuts the worker down (and kills it if it will not stop).
    """

    def __init__(self, project: Path, entry_point: str, *, python: str | None = None,
                 handshake_timeout: float = 60.0, call_timeout: float = 60.0) -> None:
        self.call_timeout = call_timeout
        self.client = AdapterClient(adapter_argv(python or sys.executable, entry_point), cwd=str(project))
        self.hello: dict[str, Any] = {}
        self._handshake_timeout = handshake_timeout
        self._stuck = False

    def start(self) -> dict[str, Any]:
        try:
            self.hello = self.client.start(self._handshake_timeout)
        except WorkerFailure as exc:
            raise DriverError(self._explain(exc)) from exc
        return self.hello

    def _explain(self, exc: WorkerFailure) -> str:
        tail = [line for line in exc.stderr_tail if line.strip()][-8:]
        text = f"{exc.message} (error_code {exc.error_code})"
        if tail:
            text += "\nworker stderr:\n" + "\n".join("  " + line for line in tail)
        return text

    def _call(self, data: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.client.call(data, timeout=self.call_timeout)
        except CallTimedOut as exc:
            self._stuck = True  # still busy with the call: a shutdown frame would wait behind it
            raise DriverError(self._explain(exc)) from exc
        except WorkerFailure as exc:
            raise DriverError(self._explain(exc)) from exc

    def info(self) -> Any:
        frame = self._call({"phase": "info", "step_index": 0, "pid": "", "session": {"id": "info", "context": {}},
                            "user_params": {}})
        if frame.get("type") == "error" or frame.get("status") != "OK":
            raise DriverError(f"info call failed: {frame.get('message', '')} "
                              f"(error_code {frame.get('error_code', '?')})")
        data = frame.get("data")
        if not isinstance(data, dict) or "info" not in data:
            raise DriverError(f"info reply has no data.info: {frame!r:.300}")
        return data["info"]

    def call(self, phase: str, step_index: int, pid: str, session_id: str, user_params: dict[str, Any],
             shm_id: str, image_meta: dict[str, Any]) -> Any:
        frame = self._call({"phase": phase, "step_index": step_index, "pid": pid,
                            "session": {"id": session_id, "context": {}}, "user_params": dict(user_params),
                            "shared_mem_id": shm_id, "image_meta": dict(image_meta)})
        return frame_to_result(frame)

    def call_execute_only(self, step_index: int, step_desc: str, cur_id: str, cur_meta: dict[str, Any],
                          guide_id: str, guide_meta: dict[str, Any], guide_info: list[Any]) -> Any:
        """One call in the execute-only shape (public SDK 0.3.x); what ``execute`` returned."""
        frame = self._call({"step_index": step_index, "step_desc": step_desc, "guide_info": list(guide_info),
                            "cur_image_shm_id": cur_id, "cur_image_meta": dict(cur_meta),
                            "guide_image_shm_id": guide_id, "guide_image_meta": dict(guide_meta)})
        return frame_to_result(frame)

    def end_session(self, session_id: str) -> None:
        return None  # the adapter evicts sessions itself

    def close(self, timeout: float = 10.0) -> int | None:
        """Shut the worker down (kill it if a call timed out); its exit code."""
        if self._stuck:
            self.client.kill()
            return self.client.wait(timeout)
        return self.client.shutdown(timeout=timeout)

    @property
    def killed(self) -> bool:
        """True if ``close()`` had to kill the worker because a call timed out."""
        return self._stuck

    @property
    def stderr_tail(self) -> list[str]:
        return self.client.stderr_tail
