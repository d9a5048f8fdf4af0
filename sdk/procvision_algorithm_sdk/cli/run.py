"""``procvision-cli run``: one pre_execute + execute through a real worker, result printed."""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any, TextIO

from ..manifest import ManifestError
from .drivers import AdapterDriver, DriverError
from .images import ImageLoadError, load_image
from .project import UsageError, project_dir, read_manifest


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="run one step of a project on an image through a worker",
                       description="Start a worker for PROJECT, send pre_execute then execute for one step "
                                   "with the image in shared memory, print both results. Exit 0 when "
                                   "execute returned status OK (verdict OK or NG), 1 otherwise.")
    p.add_argument("project", help="project folder")
    p.add_argument("--pid", required=True, help="product id")
    p.add_argument("--image", required=True, help="image file (PNG/JPEG/BMP needs pillow; or .npy)")
    p.add_argument("--step", type=int, default=1, help="step index (default 1)")
    p.add_argument("--params", default="{}", help="user_params as a JSON object")
    p.add_argument("--session", help="session id (default: a fresh one)")
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


def command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..shared_memory import ImageSegment

    project = project_dir(args.project)
    params = _parse_params(args.params)
    try:
        manifest = read_manifest(project)
    except ManifestError as exc:
        err.write(f"error: {exc}\n")
        return 1
    try:
        image = load_image(args.image)
    except ImageLoadError as exc:
        raise UsageError(str(exc)) from None
    session_id = args.session or f"cli-{uuid.uuid4().hex[:12]}"
    driver = AdapterDriver(project, manifest.entry_point, handshake_timeout=args.timeout, call_timeout=args.timeout)
    segment = ImageSegment.create_array(image)
    try:
        driver.start()
        meta = segment.image_meta(color_space="RGB")
        pre = driver.call("pre", args.step, args.pid, session_id, params, segment.id, meta)
        result: dict[str, Any] | None = None
        if pre.get("status") == "OK":
            result = driver.call("execute", args.step, args.pid, session_id, params, segment.id, meta)
    except DriverError as exc:
        err.write(f"error: {exc}\n")
        return 1
    finally:
        segment.unlink()
        driver.close()
    if args.json:
        out.write(json.dumps({"pre_execute": pre, "execute": result}, indent=2, ensure_ascii=False) + "\n")
    else:
        _print_human(out, pre, result)
    return 0 if result is not None and result.get("status") == "OK" else 1
