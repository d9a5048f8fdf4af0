"""execute: send one image to the version active for a pid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import exitcodes
from ..context import CliContext, add_common
from ..output import error, fields, print_json

_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".npy": "application/octet-stream"}


def register(sub: Any) -> None:
    p = sub.add_parser("execute", help="run one call on the version active for a pid")
    p.add_argument("--pid", required=True, help="product id; the call goes to the version active for it "
                                                 "(see `procvision-runner active`)")
    p.add_argument("--image", type=Path, required=True, help="PNG, JPEG or .npy")
    p.add_argument("--guide-image", type=Path, help="guide image (execute-only workers)")
    p.add_argument("--phase", choices=("pre", "execute"), default="execute")
    p.add_argument("--step", type=int, default=1, help="step index (default 1)")
    p.add_argument("--session", help="session id (keeps state from pre to execute)")
    p.add_argument("--params", default="{}", help="user_params as a JSON object")
    p.add_argument("--color-space", choices=("RGB", "BGR"), default="RGB")
    p.add_argument("--camera-id", default="")
    p.add_argument("--timeout-ms", type=int, help="call deadline (default: the daemon's); the CLI waits for "
                                                   "the answer as long as the daemon may take with it")
    p.add_argument("--step-desc", default="", help="step description (execute-only workers)")
    p.add_argument("--guide-info", help="guide_info as a JSON list (execute-only workers)")
    p.add_argument("--end-session", action="store_true", help="end the session after this call")
    add_common(p)
    p.set_defaults(func=execute)


def _file(path: Path) -> tuple[str, bytes, str]:
    return path.name, path.read_bytes(), _TYPES.get(path.suffix.lower(), "application/octet-stream")


def _json_option(ctx: CliContext, flag: str, raw: str, kind: type) -> Any:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        error(f"{flag} is not valid JSON: {exc}", ctx.err)
        return None
    if not isinstance(value, kind):
        error(f"{flag} must be a JSON {'object' if kind is dict else 'list'}", ctx.err)
        return None
    return value


def http_wait_s(ctx: CliContext, phase: str, timeout_ms: int | None) -> float:
    """How long to wait for the answer: at least --timeout, and at least what the daemon may spend
    on the call (each attempt waits up to the deadline for a worker and up to it for the answer;
    retryable failures are tried max_retries more times), plus a margin for the transfer."""
    if not timeout_ms:
        settings = ctx.settings()
        timeout_ms = settings.pre_execute_timeout_ms if phase == "pre" else settings.execute_timeout_ms
    budget_s = 2.0 * timeout_ms / 1000.0 * (1 + ctx.settings().max_retries)
    return max(ctx.timeout_s, budget_s + 10.0)


def execute(ctx: CliContext) -> int:
    args = ctx.args
    params = _json_option(ctx, "--params", args.params, dict)
    guide_info = _json_option(ctx, "--guide-info", args.guide_info, list) if args.guide_info else []
    if params is None or guide_info is None:
        return exitcodes.USAGE
    for path in (args.image, args.guide_image):
        if path is not None and not path.is_file():
            error(f"no such file: {path}", ctx.err)
            return exitcodes.USAGE
    form = {"pid": args.pid, "phase": args.phase, "step_index": str(args.step), "user_params": json.dumps(params),
            "color_space": args.color_space, "camera_id": args.camera_id}
    if args.session:
        form["session_id"] = args.session
    if args.timeout_ms:
        form["timeout_ms"] = str(args.timeout_ms)
    if args.step_desc:
        form["step_desc"] = args.step_desc
    if args.guide_info:
        form["guide_info"] = json.dumps(guide_info)
    if args.end_session:
        form["end_session"] = "true"
    files = {"image": _file(args.image)}
    if args.guide_image is not None:
        files["guide_image"] = _file(args.guide_image)
    wait_s = http_wait_s(ctx, args.phase, args.timeout_ms)
    with ctx.client() as client:
        result = client.execute(form, files, timeout_s=wait_s)
    if ctx.json:
        print_json(result, ctx.out)
    else:
        data = result.get("data") or {}
        served = result.get("served_by") or {}
        fields([("status", result.get("status")), ("result", data.get("result_status")),
                ("message", result.get("message") or None), ("ng reason", data.get("ng_reason")),
                ("defects", len(data.get("defect_rects") or []) if "defect_rects" in data else None),
                ("served by", f"{served.get('name')} {served.get('version')} (worker pid {served.get('worker_pid')})"),
                ("latency", f"{float(result.get('latency_ms') or 0):.1f} ms")], ctx.out)
    if result.get("status") == "OK":
        return exitcodes.OK
    code = result.get("error_code")
    return exitcodes.exit_code_for(code) if code else exitcodes.ALGORITHM_ERROR
