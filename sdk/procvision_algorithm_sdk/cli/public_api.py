"""The public SDK's ``procvision_algorithm_sdk.cli`` functions, with their signatures and results.

Scripts and unit tests written against the public SDK call these directly (``validate``, ``run``,
``init_project``, ``validate_adapter``, ``run_adapter``, ``package``). ``run``, ``run_adapter`` and
``init_project`` changed their parameters between the eras (0.0.x phase, 0.3.x execute-only); each
accepts both forms and tells them apart from the arguments. Results are the public dicts:
``{"summary": {status, passed, failed}, "checks": [...]}`` for checks, ``{"execute": ...}`` (and
``"pre_execute"`` in the phase era) for runs, ``{"status": "OK", "path"|"zip": ...}`` or
``{"status": "ERROR", "message": ...}`` otherwise.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..manifest import ManifestError
from ..session import Session
from ..styles import EXECUTE_ONLY, PHASE
from .images import ImageLoadError, load_image, synthetic_image
from .project import UsageError, read_manifest
from .report import Report

if TYPE_CHECKING:  # numpy is imported where used: `procvision-cli --help` must not pay for it
    import numpy as np

#: The public tools use a black 640x480 image when an image file cannot be read.
_FALLBACK_SHAPE = (480, 640, 3)


def _sig(*names: str, **defaults: Any) -> inspect.Signature:
    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    params += [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d) for n, d in defaults.items()]
    return inspect.Signature(params)


_RUN = {PHASE: _sig("project", "pid", "image_path", "params_json", step_index=None),
        EXECUTE_ONLY: _sig("project", "cur_image_path", "guide_image_path", "step_index", "step_desc", "guide_info")}
_RUN_ADAPTER = {
    PHASE: _sig("project", "pid", "image_path", "params_json", step_index=None, entry=None, tail_logs=False),
    EXECUTE_ONLY: _sig("project", "cur_image_path", "guide_image_path", "step_index", "step_desc", "guide_info",
                       entry=None, tail_logs=False)}
_INIT = {PHASE: _sig("name", "target_dir", "pids_csv", "version", "description"),
         EXECUTE_ONLY: _sig("name", "target_dir", "version", "description")}


def _bind_era(what: str, sigs: dict[str, inspect.Signature], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Which era's parameters ``args``/``kwargs`` fit, and the bound arguments (TypeError if neither)."""
    bound: dict[str, dict[str, Any]] = {}
    for era, sig in sigs.items():
        try:
            b = sig.bind(*args, **kwargs)
        except TypeError:
            continue
        b.apply_defaults()
        bound[era] = dict(b.arguments)
    if len(bound) == 2:
        # Only run_adapter's positional forms overlap (6 or more arguments); the 5th is the
        # execute-only era's step_desc (a string) or the phase era's step_index (an int or None).
        era = EXECUTE_ONLY if len(args) > 4 and isinstance(args[4], str) else PHASE
        return era, bound[era]
    if len(bound) == 1:
        era = next(iter(bound))
        return era, bound[era]
    forms = " or ".join(f"{what}{sig}" for sig in sigs.values())
    raise TypeError(f"{what}() takes {forms}")


def _image_or_black(path: str) -> np.ndarray:
    import numpy as np

    try:
        return load_image(path)
    except ImageLoadError as exc:
        sys.stderr.write(f"warning: {exc}; using a black {_FALLBACK_SHAPE[1]}x{_FALLBACK_SHAPE[0]} image as the "
                         "public SDK does\n")
        return np.zeros(_FALLBACK_SHAPE, dtype=np.uint8)


def _fail_report(name: str, message: str) -> dict[str, Any]:
    report = Report()
    report.fail(name, message)
    return report.to_dict()


def main(argv: list[str] | None = None) -> NoReturn:
    """``procvision-cli`` with ``argv`` (default: the command line), then exit with its code.

    Exits like the public ``main()`` does, so a script whose last line is ``main()`` reports the
    outcome. (``procvision_algorithm_sdk.cli.main.main`` returns the code instead.)
    """
    from .main import main as cli_main

    raise SystemExit(cli_main(argv))


# --- checks ----------------------------------------------------------------------------------------

def validate(project: str | None = None, manifest: str | None = None, zip_path: str | None = None) -> dict[str, Any]:
    """Check a project in this process (and an offline zip if ``zip_path``); the public report dict."""
    from .checks import validate_in_process

    root = Path(manifest).parent if manifest else Path(project) if project else None
    report = Report()
    if root is not None:
        report.extend(validate_in_process(root.expanduser().resolve(), None, synthetic_image()))
    if zip_path:
        from .zipcheck import MissingPackaging, validate_zip

        try:
            report.extend(validate_zip(Path(zip_path)))
        except MissingPackaging as exc:
            report.fail("zip", str(exc))
    if not report.checks:
        report.fail("manifest_exists", "give a project folder, a manifest.json path or a zip")
    return report.to_dict()


def validate_adapter(project: str, entry: str | None = None, tail_logs: bool = False) -> dict[str, Any]:
    """``validate --full``: the checks through a real adapter subprocess; the public report dict.

    ``tail_logs`` is accepted for the public signature: the worker's stderr is already quoted in
    the report whenever a check fails.
    """
    from .checks import validate_full

    return validate_full(Path(project).expanduser().resolve(), None, synthetic_image(), entry=entry).to_dict()


# --- runs ------------------------------------------------------------------------------------------

def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run one step in this process (the public ``run``), in either era's form.

    ``run(project, cur_image_path, guide_image_path, step_index, step_desc, guide_info)`` (0.3.x)
    returns ``{"execute": result}``; ``run(project, pid, image_path, params_json, step_index=None)``
    (0.0.x) returns ``{"pre_execute": result, "execute": result}``.
    """
    from .project import imported_from

    era, a = _bind_era("run", _RUN, args, kwargs)
    project = Path(a["project"]).expanduser().resolve()
    manifest = read_manifest(project, pids_required=False)
    step = int(a["step_index"]) if a["step_index"] is not None else 1
    with imported_from(project, manifest.module) as module:
        algorithm = getattr(module, manifest.class_name)()
    algorithm.setup()
    try:
        if era == EXECUTE_ONLY:
            cur = _image_or_black(a["cur_image_path"])
            guide = _image_or_black(a["guide_image_path"])
            return {"execute": algorithm.execute(step, str(a["step_desc"] or ""), cur, guide, a["guide_info"])}
        return _run_phase_in_process(algorithm, str(a["pid"]), str(a["image_path"]), a["params_json"], step)
    finally:
        algorithm.teardown()


def _run_phase_in_process(algorithm: Any, pid: str, image_path: str, params_json: str | None,
                          step: int) -> dict[str, Any]:
    from ..shared_memory import write_image_array_to_shared_memory

    stamp = int(time.time() * 1000)
    session = Session(f"session-{stamp}", {"product_code": pid, "operator": "dev", "trace_id": f"trace-{stamp}"})
    shm_id = f"dev-shm:{session.id}"
    image = _image_or_black(image_path)
    write_image_array_to_shared_memory(shm_id, image)
    meta = {"width": int(image.shape[1]), "height": int(image.shape[0]), "timestamp_ms": stamp,
            "camera_id": "cam-dev", "color_space": "RGB"}
    params = _params(params_json)
    algorithm.on_step_start(step, session, {"pid": pid, "phase": "pre", "trace_id": f"trace-{stamp}"})
    pre = algorithm.pre_execute(step, pid, session, params, shm_id, meta)
    exe = algorithm.execute(step, pid, session, params, shm_id, meta)
    algorithm.on_step_finish(step, session, exe if isinstance(exe, dict) else {})
    return {"pre_execute": pre, "execute": exe}


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")


def _params(params_json: str | None) -> dict[str, Any]:
    if not params_json:
        return {}
    try:
        params = json.loads(params_json)
    except ValueError:
        sys.stderr.write("warning: params are not valid JSON; using {}\n")
        return {}
    return params if isinstance(params, dict) else {}


def run_adapter(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run one step through a real adapter subprocess (the public ``run_adapter``), either era's form.

    Images go through our shared memory; results are what the algorithm returned (with its
    ``error_code``), ``{"status": "ERROR", "message": ...}`` when the worker could not be reached.
    """
    from ..shared_memory import ImageSegment
    from .drivers import AdapterDriver, DriverError

    era, a = _bind_era("run_adapter", _RUN_ADAPTER, args, kwargs)
    project = Path(a["project"]).expanduser().resolve()
    keys = ("execute",) if era == EXECUTE_ONLY else ("pre_execute", "execute")

    def failed(message: str) -> dict[str, Any]:
        return {k: {"status": "ERROR", "message": message} for k in keys}

    try:
        manifest = read_manifest(project, pids_required=False)
    except ManifestError as exc:
        return failed(f"manifest.json: {exc}")
    step = int(a["step_index"]) if a["step_index"] is not None else 1
    driver = AdapterDriver(project, a["entry"] or manifest.entry_point)
    try:
        with contextlib.ExitStack() as stack:
            driver.start()
            if era == EXECUTE_ONLY:
                cur = stack.enter_context(ImageSegment.create_array(_image_or_black(a["cur_image_path"])))
                guide = stack.enter_context(ImageSegment.create_array(_image_or_black(a["guide_image_path"])))
                return {"execute": driver.call_execute_only(step, str(a["step_desc"] or ""), cur.id, cur.image_meta(),
                                                            guide.id, guide.image_meta(),
                                                            list(a["guide_info"] or []))}
            seg = stack.enter_context(ImageSegment.create_array(_image_or_black(a["image_path"])))
            session_id = f"session-{int(time.time() * 1000)}"
            params = _params(a["params_json"])
            pre = driver.call("pre", step, str(a["pid"]), session_id, params, seg.id, seg.image_meta())
            exe = driver.call("execute", step, str(a["pid"]), session_id, params, seg.id, seg.image_meta())
            return {"pre_execute": pre, "execute": exe}
    except DriverError as exc:
        return failed(str(exc))
    finally:
        driver.close()
        if a["tail_logs"]:
            for line in driver.stderr_tail:
                sys.stderr.write(line + "\n")


# --- scaffolding and packaging ---------------------------------------------------------------------

def init_project(*args: Any, style: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Scaffold a project (the public ``init_project``), either era's form.

    ``init_project(name, target_dir, version, description)`` (0.3.x) writes an execute-only project;
    ``init_project(name, target_dir, pids_csv, version, description)`` (0.0.x) a phase one. ``style``
    (``"phase"``/``"execute-only"``) overrides what the form implies.
    """
    from .init import init_project as scaffold

    era, a = _bind_era("init_project", _INIT, args, kwargs)
    name = str(a["name"])
    pids = [p.strip() for p in str(a.get("pids_csv") or "").split(",") if p.strip()]
    target = Path(a["target_dir"] or name).expanduser().resolve()
    try:
        path = scaffold(name, target, pids, style=style or era, version=str(a["version"] or "1.0.0"),
                        description=a["description"])
    except UsageError as exc:
        return {"status": "ERROR", "message": str(exc)}
    return {"status": "OK", "path": str(path)}


def package(project: str, output: str | None = None, requirements: str | None = None, auto_freeze: bool = True,
            wheels_platform: str | None = None, python_version: str | None = None,
            implementation: str | None = None, abi: str | None = None, skip_download: bool = False,
            embed_python: bool = False, python_runtime: str | None = None,
            runtime_python_version: str | None = None, runtime_abi: str | None = None) -> dict[str, Any]:
    """Build the offline zip (the public ``package``); ``{"status": "OK", "zip": path}`` or an ERROR dict.

    Deliberate differences (docs/compatibility.md): a missing requirements file is never filled
    with ``pip freeze`` (``auto_freeze`` changes nothing); the wheels' platform defaults to this
    machine's, not ``win_amd64``; ``skip_download`` and embedding a Python runtime are refused.
    """
    from .package import PackageError
    from .package_options import PackageRequest, run_package

    request = PackageRequest(project=project, output=output, requirements=requirements,
                             wheels_platform=wheels_platform, python_version=python_version,
                             implementation=implementation, abi=abi, skip_download=skip_download,
                             embed_python=embed_python or bool(python_runtime),
                             runtime=(runtime_python_version or runtime_abi or python_runtime))
    try:
        return {"status": "OK", "zip": str(run_package(request, log=_log))}
    except (UsageError, PackageError, ManifestError) as exc:
        return {"status": "ERROR", "message": str(exc)}
