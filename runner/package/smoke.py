"""Install smoke test: talk to a freshly built package through the real worker protocol.

Starts the adapter from the new venv (cwd = the package folder, environment: ``worker_environment``
applied to ``settings.inherited_environment``) and runs the same handshake as a served worker
(``launch.handshake``: hello, dialect, proof that the algorithm loaded). Then the dialect's smoke plan
(``smoke_phases``):

* phase style (ours, public 0.0.7): ``info`` (name, version, supported_pids must match the manifest),
  ``pre`` and ``execute`` on a synthetic image for the first pid and step;
* execute-only style (ours, public 0.3.x): one ``execute`` with two synthetic images.

Results are schema-checked. An algorithm answering status ERROR (or raising) on a synthetic image is
accepted and recorded; a crash, a timeout, a protocol error, a schema violation or an info mismatch
fails the test. The report is a dict stored in the registry.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from procvision_algorithm_sdk import protocol
from procvision_algorithm_sdk.client import AdapterClient, WorkerFailure
from procvision_algorithm_sdk.errors import ErrorCode
from procvision_algorithm_sdk.manifest import Manifest
from procvision_algorithm_sdk.schema import Issue, check_execute_result, check_info, check_pre_result

from ..config import Settings
from ..supervision.containment import choose_containment
from ..supervision.dialects import CallRequest, DialectStrategy, ImageHandoff
from ..supervision.launch import handshake, worker_command
from ..supervision.spec import WorkerSpec

#: Error frames that mean the worker or its result is broken, not that the algorithm declined the image.
BROKEN_CODES = frozenset({ErrorCode.STDOUT_CONTAMINATED.value, ErrorCode.PROTOCOL_ERROR.value,
                          ErrorCode.FRAME_TOO_LARGE.value, ErrorCode.INVALID_RESULT.value,
                          ErrorCode.HANDSHAKE_FAILED.value, ErrorCode.NOT_INITIALIZED.value,
                          ErrorCode.WORKER_CRASHED.value})
SYNTHETIC_SIZE = (480, 640)


class SmokeFailure(Exception):
    """The smoke test failed; ``report`` says where and why."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.report = report


def synthetic_image(seed: int = 0) -> np.ndarray:
    """A deterministic grey gradient with a bright square: something any algorithm can read."""
    height, width = SYNTHETIC_SIZE
    y, x = np.mgrid[0:height, 0:width]
    grey = ((x + y + seed * 37) % 256).astype(np.uint8)
    img = np.stack([grey, grey, grey], axis=2)
    img[height // 3: height // 3 + 64, width // 3: width // 3 + 64] = 255
    return img


def _first_step(manifest: Manifest, info: dict[str, Any] | None) -> int:
    for source in ((info or {}).get("steps"), list(manifest.steps)):
        if isinstance(source, list) and source and isinstance(source[0], dict):
            index = source[0].get("index")
            if isinstance(index, int) and not isinstance(index, bool):
                return index
    return 1


class _Run:
    """One smoke test: the client, the deadline and the report being filled."""

    def __init__(self, settings: Settings, deadline: float, report: dict[str, Any]) -> None:
        self.settings = settings
        self.deadline = deadline
        self.report = report

    def remaining(self, cap_s: float) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise SmokeFailure(f"the smoke test ran out of time (smoke_timeout_s={self.settings.smoke_timeout_s:g})",
                               self.report)
        return min(left, cap_s)

    def step(self, name: str, result: str, message: str = "", **extra: Any) -> None:
        self.report["steps"].append({"name": name, "result": result, "message": message, **extra})

    def fail(self, name: str, message: str, **extra: Any) -> SmokeFailure:
        self.step(name, "FAIL", message, **extra)
        return SmokeFailure(f"smoke test step '{name}' failed: {message}", self.report)

    def call(self, client: AdapterClient, handoff: ImageHandoff, strategy: DialectStrategy, request: CallRequest,
             cap_s: float, name: str) -> dict[str, Any]:
        try:
            data = strategy.build_call(request, handoff)
            return client.call(data, timeout=self.remaining(cap_s))
        except WorkerFailure as exc:
            raise self.fail(name, f"{type(exc).__name__}: {exc.message}", error_code=exc.error_code,
                            exit_code=exc.exit_code, stderr_tail=exc.stderr_tail[-20:]) from exc
        finally:
            handoff.release_all()

    def judge(self, name: str, frame: dict[str, Any], check: Callable[[Any], list[Issue]]) -> None:
        kind = frame.get("type")
        if kind == protocol.ERROR:
            code = str(frame.get("error_code") or "")
            if code in BROKEN_CODES:
                raise self.fail(name, f"worker error {code}: {frame.get('message', '')}", error_code=code)
            self.step(name, "PASS", f"algorithm declined the synthetic image: error {code}: "
                      f"{frame.get('message', '')}", status="ERROR", error_code=code)
            return
        if kind != protocol.RESULT:
            raise self.fail(name, f"unexpected reply frame type {kind!r}")
        result = {k: frame[k] for k in ("status", "message", "data", "error_code") if k in frame}
        issues = check(result)
        if issues:
            raise self.fail(name, "; ".join(str(i) for i in issues), issues=[str(i) for i in issues])
        self.step(name, "PASS", str(frame.get("message") or ""), status=frame.get("status"),
                  result_status=(frame.get("data") or {}).get("result_status"))


def _check_info(run: _Run, frame: dict[str, Any], manifest: Manifest) -> dict[str, Any] | None:
    """Judge the smoke test's info reply; returns the info (for the first step's index)."""
    if frame.get("type") != protocol.RESULT or frame.get("status") != "OK":
        raise run.fail("info", f"get_info() failed: {frame.get('error_code', '')} {frame.get('message', '')}")
    info = (frame.get("data") or {}).get("info")
    issues = check_info(info, manifest, first_step_index=0)  # 0: the public 0.0.7 template
    if issues:
        raise run.fail("info", "; ".join(str(i) for i in issues), issues=[str(i) for i in issues])
    run.step("info", "PASS", "name, version and supported_pids match the manifest")
    return info if isinstance(info, dict) else None


def run_smoke_test(settings: Settings, python: Path, package_dir: Path, manifest: Manifest,
                   shm_dir: Path) -> dict[str, Any]:
    """Run the smoke test; returns the report (status PASS) or raises SmokeFailure (status FAIL).

    ``shm_dir`` is a scratch folder for the public dialects' image files; it is removed afterwards.
    """
    started = time.monotonic()
    report: dict[str, Any] = {"status": "FAIL", "dialect": None, "sdk_version": None, "steps": [],
                              "duration_ms": 0}
    run = _Run(settings, started + settings.smoke_timeout_s, report)
    # The worker it starts is contained and boxed as a served one: same environment, sandbox, limit and
    # process group, so a package that needs more than the box allows fails here, not in production.
    containment, _ = choose_containment(settings.worker_memory_mechanism, settings.worker_memory_limit_mb)
    try:
        placement = containment.place(f"pv-{os.getpid()}-smoke-{int(started * 1000)}",
                                      settings.worker_memory_limit_mb)
    except OSError as exc:
        raise run.fail("hello", f"cannot place the worker under its memory limit: {exc}") from exc
    spec = WorkerSpec(manifest.name, manifest.version, package_dir, package_dir, python, manifest.entry_point)
    try:
        command = worker_command(settings, spec, shm_dir, settings.inherited_environment, placement)
    except BaseException:
        placement.terminate()
        raise
    report["sandbox"] = command.protections.to_dict()
    client = AdapterClient(command.argv, str(command.cwd), command.env, max_frame_bytes=settings.max_frame_bytes,
                           stderr_tail_lines=settings.stderr_tail_lines)
    try:
        try:
            # The handshake proves the algorithm loaded, as it does for a served worker (public adapters
            # import it after their hello): the calls below then get their own deadlines.
            hello, dialect, _ = handshake(client, settings, run.remaining)
        except WorkerFailure as exc:
            raise run.fail("hello", exc.message, error_code=exc.error_code, exit_code=exc.exit_code,
                           stderr_tail=exc.stderr_tail[-20:]) from exc
        strategy = dialect.strategy
        report["dialect"] = dialect.value
        report["sdk_version"] = hello.get("sdk_version")
        run.step("hello", "PASS", f"dialect {dialect.value}, sdk {hello.get('sdk_version')}")
        handoff = ImageHandoff(dialect, shm_dir, command.segment_dir)
        pid = manifest.supported_pids[0] if manifest.supported_pids else ""  # 0.3.x manifests list none
        images = (synthetic_image(0), synthetic_image(1))
        session = f"smoke-{os.getpid()}-{int(started * 1000)}"
        checks: dict[str, tuple[int, Callable[[Any], list[Issue]]]] = {
            "pre": (settings.pre_execute_timeout_ms, check_pre_result),
            "execute": (settings.execute_timeout_ms, lambda r: check_execute_result(r, settings.max_defects))}
        info: dict[str, Any] | None = None
        for phase in strategy.smoke_phases:
            request = strategy.smoke_request(phase, _first_step(manifest, info), pid, session, images)
            if phase == "info":
                info = _check_info(run, run.call(client, handoff, strategy, request,
                                                 settings.info_timeout_ms / 1000.0, "info"), manifest)
                continue
            cap_ms, check = checks[phase]
            frame = run.call(client, handoff, strategy, request, cap_ms / 1000.0, phase)
            run.judge(phase, frame, check)
        if not client.alive:
            failure = client.failure
            raise run.fail("shutdown", f"worker died after the calls: {failure.message if failure else ''}")
        report["status"] = "PASS"
        return report
    finally:
        if report["status"] == "PASS":
            client.shutdown(timeout=min(settings.shutdown_grace_s, 5.0), term_timeout=2.0)
        else:
            # A failed worker may be stuck in algorithm code: do not wait for it to agree to stop.
            client.kill()
            client.wait(5.0)
        placement.terminate()  # anything the worker started ends with the test
        report["duration_ms"] = int((time.monotonic() - started) * 1000)
        report["stderr_tail"] = client.stderr_tail[-20:]
        shutil.rmtree(shm_dir, ignore_errors=True)
