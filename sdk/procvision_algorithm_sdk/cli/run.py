"""``procvision-cli run``: one step through a real worker, result printed.

Phase-style algorithms get ``pre_execute`` + ``execute`` on ``--image`` for ``--pid``; execute-only
ones (told by the worker's hello) one ``execute`` on ``--cur-image`` and ``--guide-image``, with
``--step-desc`` and ``--guide-info``: the options of both eras of the public ``procvision-cli run``.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..manifest import ManifestError
from ..styles import EXECUTE_ONLY
from .drivers import AdapterDriver, DriverError
from .images import ImageLoadError, load_image
from .project import UsageError, project_dir, read_manifest


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="run one step of a project on an image through a worker",
                       description="Start a worker for PROJECT, send pre_execute then execute for one step "
                                   "with the image in shared memory, print both results. Exit 0 when "
                                   "execute returned status OK (verdict OK or NG), 1 otherwise.")
    p.add_argument("project", help="project folder")
    p.add_argument("--pid", help="product id (phase style)")
    p.add_argument("--image", help="image file (PNG/JPEG/BMP needs pillow; or .npy); for execute-only "
                                   "algorithms the guide image, as in the public SDK 0.3.x")
    p.add_argument("--cur-image", help="current image file (execute-only style)")
    p.add_argument("--guide-image", help="guide image file (execute-only style)")
    p.add_argument("--step", type=int, default=1, help="step index (default 1)")
    p.add_argument("--step-desc", default="", help="step description (execute-only style)")
    p.add_argument("--guide-info", default="[]", help="guide_info as JSON, or @file.json (execute-only style)")
    p.add_argument("--params", default="{}", help="user_params as a JSON object (phase style)")
    p.add_argument("--session", help="session id (default: a fresh one)")
    p.add_argument("--entry", help="module:Class to run instead of the manifest's entry_point")
    p.add_argument("--tail-logs", action="store_true", help="print the worker's log (stderr) when it has stopped")
    p.add_argument("--legacy-run", action="store_true",
                   help="public SDK 0.0.x option: run the algorithm in this process instead of a worker")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each worker reply")
    p.set_defaults(handler=command)


def _parse_params(text: str) -> dict[str, Any]:
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--params is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise UsageError("--params must be a JSON object such as '{\"min_area\": 40}'")
    return params


def _status_line(result: dict[str, Any]) -> str:
    if result.get("status") == "OK":
        return f"OK {result.get('message') or ''}".rstrip()
    return f"ERROR {result.get('error_code') or ''} {result.get('message') or ''}".replace("  ", " ").rstrip()


def _print_human(out: TextIO, pre: dict[str, Any], result: dict[str, Any] | None) -> None:
    out.write(f"pre_execute: {_status_line(pre)}\n")
    if result is None:
        out.write("execute:     skipped (pre_execute did not return OK)\n")
        return
    _print_execute(out, result)


def _print_execute(out: TextIO, result: dict[str, Any]) -> None:
    data = result.get("data") or {}
    if result.get("status") != "OK":
        out.write(f"execute:     {_status_line(result)}\n")
        return
    out.write(f"execute:     OK, result_status {data.get('result_status')}\n")
    if data.get("ng_reason"):
        out.write(f"ng_reason:   {data['ng_reason']}\n")
    for i, r in enumerate(data.get("defect_rects") or []):
        extra = "".join(f" {k}={r[k]}" for k in ("label", "score") if k in r)
        out.write(f"defect[{i}]:   x={r.get('x')} y={r.get('y')} width={r.get('width')} "
                  f"height={r.get('height')}{extra}\n")


def _step_label(steps: Sequence[dict[str, Any]], index: int) -> str:
    """``2 (inspect)`` for a step the manifest declares; UsageError (exit 2) for one it does not, so a
    wrong ``--step`` is not run silently as if it existed."""
    if not steps:
        return str(index)
    for step in steps:
        if step.get("index") == index:
            return f"{index} ({step['name']})" if step.get("name") else str(index)
    declared = ", ".join(f"{s.get('index')} ({s.get('name')})" if s.get("name") else str(s.get("index"))
                         for s in steps)
    raise UsageError(f"--step {index} is not a step of this algorithm; manifest.json declares: {declared}")


def _load(path: str) -> Any:
    try:
        return load_image(path)
    except ImageLoadError as exc:
        raise UsageError(str(exc)) from None


def _guide_info(text: str) -> list[Any]:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--guide-info file cannot be read: {exc}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--guide-info is not valid JSON: {exc}") from None
    if not isinstance(value, list):
        raise UsageError('--guide-info must be a JSON list such as \'[{"label": "screw", "posList": []}]\'')
    return value


def _execute_only(args: argparse.Namespace, driver: AdapterDriver, out: TextIO) -> int:
    from ..shared_memory import ImageSegment

    guide_path = args.guide_image or args.image
    if not args.cur_image or not guide_path:
        raise UsageError("this algorithm is written in the execute-only style: pass --cur-image and --guide-image")
    cur, guide = _load(args.cur_image), _load(guide_path)
    guide_info = _guide_info(args.guide_info)
    with ImageSegment.create_array(cur) as cur_seg, ImageSegment.create_array(guide) as guide_seg:
        result = driver.call_execute_only(args.step, args.step_desc, cur_seg.id, cur_seg.image_meta(),
                                          guide_seg.id, guide_seg.image_meta(), guide_info)
    if args.json:
        out.write(json.dumps({"execute": result}, indent=2, ensure_ascii=False) + "\n")
    else:
        _print_execute(out, result)
    return 0 if result.get("status") == "OK" else 1


def _legacy_run(args: argparse.Namespace, project: Path, out: TextIO) -> int:
    from .public_api import run

    if not args.pid or not args.image:
        raise UsageError("--legacy-run needs --pid and --image")
    results = run(str(project), args.pid, args.image, args.params, args.step)
    out.write(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    execute = results.get("execute")
    return 0 if isinstance(execute, dict) and execute.get("status") == "OK" else 1


def command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..shared_memory import ImageSegment

    project = project_dir(args.project)
    params = _parse_params(args.params)
    try:
        manifest = read_manifest(project, pids_required=False)
    except ManifestError as exc:
        err.write(f"error: {exc}\n")
        return 1
    step_label = _step_label(manifest.steps, args.step)
    if args.legacy_run:
        return _legacy_run(args, project, out)
    session_id = args.session or f"cli-{uuid.uuid4().hex[:12]}"
    driver = AdapterDriver(project, args.entry or manifest.entry_point, handshake_timeout=args.timeout,
                           call_timeout=args.timeout)
    try:
        hello = driver.start()
        if hello.get("algorithm_style") == EXECUTE_ONLY:
            return _execute_only(args, driver, out)
        if not args.pid or not args.image:
            raise UsageError("this algorithm is written in the phase style: pass --pid and --image")
        with ImageSegment.create_array(_load(args.image)) as segment:
            meta = segment.image_meta(color_space="RGB")
            pre = driver.call("pre", args.step, args.pid, session_id, params, segment.id, meta)
            result: dict[str, Any] | None = None
            if pre.get("status") == "OK":
                result = driver.call("execute", args.step, args.pid, session_id, params, segment.id, meta)
    except DriverError as exc:
        err.write(f"error: {exc}\n")
        return 1
    finally:
        driver.close()
        if args.tail_logs:
            err.write("\n".join(driver.stderr_tail) + "\n")
    if args.json:
        out.write(json.dumps({"step": args.step, "pre_execute": pre, "execute": result}, indent=2,
                             ensure_ascii=False) + "\n")
    else:
        out.write(f"step:        {step_label}\n")
        _print_human(out, pre, result)
    return 0 if result is not None and result.get("status") == "OK" else 1
