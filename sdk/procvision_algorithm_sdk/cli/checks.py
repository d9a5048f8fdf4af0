"""The project checks behind ``procvision-cli validate`` (in-process and ``--full``)."""

from __future__ import annotations

import contextlib
import inspect
import sys
import traceback
import uuid
from pathlib import Path
from typing import Any, Protocol

from ..manifest import Manifest, ManifestError
from ..schema import Issue, check_execute_result, check_info, check_pre_result
from ..styles import EXECUTE_ONLY, PHASE
from .drivers import AdapterDriver, DriverError, InProcessDriver
from .execute_only_checks import adapter_call, in_process_call, smoke_execute_only
from .project import (
    REQUIREMENTS,
    default_params,
    imported_from,
    read_manifest,
    requirement_lines,
    resolve_pid,
    step_indexes,
    step_spec,
)
from .report import Report


class Driver(Protocol):
    """What ``smoke`` needs: InProcessDriver and AdapterDriver both provide it."""

    def info(self) -> Any: ...

    def call(self, phase: str, step_index: int, pid: str, session_id: str, user_params: dict[str, Any],
             shm_id: str, image_meta: dict[str, Any]) -> Any: ...

    def end_session(self, session_id: str) -> None: ...


def _issues_text(issues: list[Issue]) -> str:
    return "\n".join(str(i) for i in issues)


def _exc_text(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def check_manifest(project: Path, report: Report) -> Manifest | None:
    """``manifest`` and ``requirements`` checks; the manifest if it is valid."""
    manifest: Manifest | None = None
    try:
        # supported_pids may be missing (execute-only projects); phase-style ones are held to it by
        # check_info_against once the style is known.
        manifest = read_manifest(project, pids_required=False)
        pids = ", ".join(manifest.supported_pids) or "none declared (execute-only projects may omit them)"
        report.pass_("manifest", f"{manifest.name} {manifest.version}, entry {manifest.entry_point}, pids {pids}")
    except ManifestError as exc:
        report.fail("manifest", str(exc))
    req = project / REQUIREMENTS
    if req.is_file():
        lines = requirement_lines(req.read_text(encoding="utf-8", errors="replace"))
        report.pass_("requirements", ", ".join(lines) if lines else "requirements.txt lists nothing")
    else:
        # Not a failure: the public SDK's examples ship none, and package then bundles the SDK only.
        report.skip("requirements", f"{REQUIREMENTS} not found in {project}: the package will hold only the SDK "
                                    "and its dependencies; list what the algorithm imports, one per line")
    return manifest


def check_info_against(info: Any, manifest: Manifest, report: Report) -> bool:
    """``get_info`` (schema) and ``info_matches_manifest`` checks; True if both passed."""
    if not manifest.supported_pids:
        report.fail("manifest_pids", "phase-style algorithms need 'supported_pids' in manifest.json (a list of "
                                     "product id strings); only execute-only algorithms may omit it")
        return False
    own = check_info(info)
    if own:
        report.fail("get_info", _issues_text(own))
    else:
        steps = info.get("steps") or []
        report.pass_("get_info", f"{len(steps)} step(s): " + ", ".join(
            f"{s.get('index')} {s.get('name')}" for s in steps))
    agree = [i for i in check_info(info, manifest) if i not in own]
    if isinstance(info, dict) and manifest.steps:
        declared = [(s.get("index"), s.get("name")) for s in manifest.steps]
        actual = [(s.get("index"), s.get("name")) for s in info.get("steps") or [] if isinstance(s, dict)]
        if declared != actual:
            agree.append(Issue("steps", f"get_info() declares steps {actual}, manifest declares {declared}"))
    if agree:
        report.fail("info_matches_manifest", _issues_text(agree))
    elif not own:
        report.pass_("info_matches_manifest", "name, version, supported_pids and steps agree")
    else:
        report.skip("info_matches_manifest", "get_info() is invalid")
    return not own and not agree


def smoke(driver: Driver, info: Any, manifest: Manifest, pid_arg: str | None, image: Any,
          report: Report) -> None:
    """Run pre_execute + execute for every declared step on ``image``; check each result's schema."""
    from ..shared_memory import ImageSegment

    pid = resolve_pid(pid_arg, list(manifest.supported_pids))
    if pid is None or pid not in manifest.supported_pids:
        report.fail("smoke_pid", f"pid {pid!r} is not in supported_pids {list(manifest.supported_pids)}")
        return
    session_id = f"validate-{uuid.uuid4().hex[:12]}"
    segment = ImageSegment.create_array(image)
    try:
        meta = segment.image_meta(color_space="RGB")
        for index in step_indexes(info):
            params = default_params(step_spec(info, index))
            _smoke_phase(driver, "pre", index, pid, session_id, params, segment.id, meta, report)
            _smoke_phase(driver, "execute", index, pid, session_id, params, segment.id, meta, report)
        driver.end_session(session_id)
    finally:
        segment.unlink()


def _smoke_phase(driver: Driver, phase: str, index: int, pid: str, session_id: str, params: dict[str, Any],
                 shm_id: str, meta: dict[str, Any], report: Report) -> None:
    name = f"{'pre_execute' if phase == 'pre' else 'execute'}[step {index}]"
    try:
        result = driver.call(phase, index, pid, session_id, params, shm_id, meta)
    except DriverError as exc:
        report.fail(name, str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - the algorithm's own bug is what this check reports
        report.fail(name, f"raised {_exc_text(exc)}")
        return
    issues = check_pre_result(result) if phase == "pre" else check_execute_result(result)
    if issues:
        report.fail(name, _issues_text(issues))
        return
    if result.get("status") != "OK":
        report.fail(name, f"returned ERROR on the smoke image (pid {pid}, params {params}): "
                          f"{result.get('message', '')} (error_code {result.get('error_code', '?')})")
        return
    if phase == "pre":
        report.pass_(name, result.get("message") or "OK")
        return
    data = result.get("data") or {}
    verdict = data.get("result_status")
    detail = f"{verdict}" if verdict == "OK" else \
        f"NG: {data.get('ng_reason')} ({len(data.get('defect_rects') or [])} defect rect(s))"
    report.pass_(name, detail)


def validate_in_process(project: Path, pid: str | None, image: Any) -> Report:
    """Import the entry point here (project folder on sys.path) and check it end to end."""
    from ..base import BaseAlgorithm

    report = Report()
    manifest = check_manifest(project, report)
    if manifest is None:
        report.skip("entry_import", "manifest.json is invalid")
        return report
    with contextlib.ExitStack() as stack:
        # The author's print() calls must not mix into the report (stdout may be --json output).
        stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        try:
            module = stack.enter_context(imported_from(project, manifest.module))
        except Exception as exc:  # noqa: BLE001 - import-time errors in the author's code are the finding
            report.fail("entry_import", f"importing {manifest.module!r} from {project} failed: {_exc_text(exc)}")
            return report
        report_import(module, manifest, report)
        cls = getattr(module, manifest.class_name, None)
        if cls is None:
            return report
        if not (inspect.isclass(cls) and issubclass(cls, BaseAlgorithm)):
            report.fail("base_class", f"{manifest.entry_point} is not a subclass of "
                                      "procvision_algorithm_sdk.BaseAlgorithm")
            return report
        if inspect.isabstract(cls):
            missing = sorted(getattr(cls, "__abstractmethods__", ()))
            report.fail("base_class", f"{manifest.class_name} does not implement {', '.join(missing)}")
            return report
        try:
            style = cls.algorithm_style()
        except TypeError as exc:
            report.fail("base_class", str(exc))
            return report
        report.pass_("base_class", f"{manifest.class_name} subclasses BaseAlgorithm ({style} style)")
        _run_instance(cls, manifest, pid, image, report, style)
    return report


def report_import(module: Any, manifest: Manifest, report: Report) -> None:
    if getattr(module, manifest.class_name, None) is None:
        report.fail("entry_import", f"module {manifest.module!r} has no attribute {manifest.class_name!r} "
                                    f"(check entry_point in manifest.json)")
    else:
        report.pass_("entry_import", f"{manifest.entry_point} imported from {getattr(module, '__file__', '?')}")


def _run_instance(cls: Any, manifest: Manifest, pid: str | None, image: Any, report: Report,
                  style: str = PHASE) -> None:
    try:
        algorithm = cls()
        algorithm.setup()
    except Exception as exc:  # noqa: BLE001 - constructor/setup failures are the finding
        report.fail("setup", f"creating {manifest.class_name}() or setup() raised {_exc_text(exc)}")
        return
    report.pass_("setup", f"{manifest.class_name}() and setup() completed")
    driver = InProcessDriver(algorithm)
    try:
        if style == EXECUTE_ONLY:
            smoke_execute_only(in_process_call(algorithm), manifest, image, report)
            return
        try:
            info = driver.info()
        except Exception as exc:  # noqa: BLE001 - the author's get_info() failing is the finding
            report.fail("get_info", f"raised {_exc_text(exc)}")
            return
        if check_info_against(info, manifest, report):
            smoke(driver, info, manifest, pid, image, report)
    finally:
        try:
            algorithm.teardown()
            report.pass_("teardown", "teardown() completed")
        except Exception as exc:  # noqa: BLE001 - reported, not swallowed
            report.fail("teardown", f"raised {_exc_text(exc)}")


def validate_full(project: Path, pid: str | None, image: Any, *, handshake_timeout: float = 60.0,
                  call_timeout: float = 60.0, entry: str | None = None) -> Report:
    """The same checks through a real adapter subprocess started with this interpreter.

    ``entry`` (``module:Class``) replaces the manifest's entry point.
    """
    report = Report()
    manifest = check_manifest(project, report)
    if manifest is None:
        report.skip("adapter_start", "manifest.json is invalid")
        return report
    driver = AdapterDriver(project, entry or manifest.entry_point, handshake_timeout=handshake_timeout,
                           call_timeout=call_timeout)
    try:
        hello = driver.start()
    except DriverError as exc:
        report.fail("adapter_start", str(exc))
        return report
    try:
        report.pass_("adapter_start", f"hello from SDK {hello.get('sdk_version')} "
                                      f"(capabilities: {', '.join(map(str, hello.get('capabilities') or []))})")
        if hello.get("algorithm_style") == EXECUTE_ONLY:
            smoke_execute_only(adapter_call(driver), manifest, image, report)
            return report
        try:
            info = driver.info()
        except DriverError as exc:
            report.fail("get_info", str(exc))
            return report
        if check_info_against(info, manifest, report):
            smoke(driver, info, manifest, pid, image, report)
    finally:
        code = driver.close()
        if driver.killed:
            report.skip("adapter_shutdown", f"worker killed after a call timed out (exit code {code})")
        elif code == 0:
            report.pass_("adapter_shutdown", "worker exited with code 0")
        else:
            tail = "\n".join(driver.stderr_tail[-5:])
            report.fail("adapter_shutdown", f"worker exit code {code} after shutdown" + (f"\n{tail}" if tail else ""))
    return report
