"""install, validate, list, show, uninstall, start/stop/restart."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import exitcodes
from ..context import CliContext, add_common
from ..output import InstallProgress, error, fields, print_json, table


def register(sub: Any) -> None:
    p = sub.add_parser("install", help="install a package zip through the daemon")
    p.add_argument("zip", type=Path, help="<name>-v<version>-offline.zip")
    p.add_argument("--idempotency-key", help="retrying with the same key never installs twice")
    p.add_argument("--by-path", action="store_true",
                   help="send the zip's path instead of uploading it (daemon on this machine)")
    p.add_argument("--no-wait", action="store_true", help="print the operation and return at once")
    p.add_argument("--wait-timeout", type=float, default=3600.0, help="seconds to wait for the install")
    add_common(p)
    p.set_defaults(func=install)

    p = sub.add_parser("validate", help="check a package zip (or an installed version) without installing")
    p.add_argument("target", nargs="+", metavar="ZIP | NAME VERSION",
                   help="a zip file, or NAME VERSION of an installed version")
    p.add_argument("--rerun", action="store_true", help="installed version: run its smoke test again")
    add_common(p)
    p.set_defaults(func=validate)

    p = sub.add_parser("list", help="installed versions")
    p.add_argument("--state", help="only versions in this state (installed, running, failed, ...)")
    p.add_argument("--name", help="only versions of this package")
    p.add_argument("--failed", action="store_true",
                   help="failed API installs instead (also those that never got a name/version: bad zip, "
                        "disk full, interrupted by a restart)")
    add_common(p)
    p.set_defaults(func=list_versions)

    p = sub.add_parser("show", help="one version: manifest, state, workers, last error")
    p.add_argument("name")
    p.add_argument("version")
    add_common(p)
    p.set_defaults(func=show)

    p = sub.add_parser("uninstall", help="remove a version")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--force", action="store_true", help="also when active or busy (stops its workers)")
    add_common(p)
    p.set_defaults(func=uninstall)

    for action, text in (("start", "start a version's workers"), ("stop", "stop a version's workers"),
                         ("restart", "restart a version's workers")):
        p = sub.add_parser(action, help=text)
        p.add_argument("name")
        p.add_argument("version")
        add_common(p)
        p.set_defaults(func=lifecycle, action=action)


def install(ctx: CliContext) -> int:
    args: argparse.Namespace = ctx.args
    zip_path: Path = args.zip
    if not zip_path.is_file():
        error(f"no such file: {zip_path}", ctx.err)
        return exitcodes.USAGE
    with ctx.client() as client:
        op = client.install(zip_path, idempotency_key=args.idempotency_key, by_path=args.by_path)
        if args.no_wait:
            if ctx.json:
                print_json(op, ctx.out)
            else:
                ctx.out.write(f"operation {op['id']} {op['state']}\n")
            return exitcodes.OK
        progress = InstallProgress(ctx.err) if not ctx.json else None
        final = client.wait(op["id"], timeout_s=args.wait_timeout,
                            on_update=progress.update if progress else None)
        if progress is not None:
            progress.finish()
    if ctx.json:
        print_json(final, ctx.out)
    if final["state"] == "failed":
        problem = final.get("error") or {}
        if not ctx.json:
            error(f"install failed: [{problem.get('code')} {problem.get('name')}] {problem.get('detail')}", ctx.err)
        return exitcodes.exit_code_for(problem.get("code"))
    if not ctx.json:
        result = final.get("result") or {}
        how = "already installed" if result.get("idempotent") else "installed"
        ctx.out.write(f"{how}: {result.get('name')} {result.get('version')} "
                      f"({result.get('dialect') or 'dialect unknown'})\n")
        signature = result.get("signature") or {}
        if signature.get("status") in ("unsigned", "unverified"):
            error(f"WARNING: the package is {signature['status']} and was installed only because trust_mode is "
                  f"{signature.get('mode')}: {(signature.get('error') or {}).get('message')}", ctx.err)
    return exitcodes.OK


def _print_report(ctx: CliContext, report: dict[str, Any]) -> int:
    if ctx.json:
        print_json(report, ctx.out)
    else:
        summary = report.get("summary") or {}
        ctx.out.write(f"status: {summary.get('status')}  passed: {summary.get('passed')}  "
                      f"failed: {summary.get('failed')}\n")
        table(report.get("checks") or [], ["name", "result", "message"], ctx.out, empty="(no checks)")
    if report.get("note") and not ctx.json:
        error(str(report["note"]), ctx.err)
    status = str((report.get("summary") or {}).get("status", "")).upper()
    if status in ("PASS", "PASSED", "OK"):
        return exitcodes.OK
    # A failed check that carries an error code exits like that error (2001 invalid_zip -> 11).
    codes = [str(c.get("code")) for c in report.get("checks") or [] if isinstance(c, dict) and c.get("code")]
    code = codes[0] if codes else str((report.get("error") or {}).get("code") or "")
    return exitcodes.exit_code_for(code) if code else exitcodes.FAILURE


def validate(ctx: CliContext) -> int:
    target: list[str] = ctx.args.target
    with ctx.client() as client:
        if len(target) == 1:
            path = Path(target[0])
            if not path.is_file():
                error(f"no such file: {path}", ctx.err)
                return exitcodes.USAGE
            report = client.validate_zip(path)
        elif len(target) == 2:
            report = client.validate_installed(target[0], target[1], rerun=ctx.args.rerun)
        else:
            error("validate takes a ZIP or NAME VERSION", ctx.err)
            return exitcodes.USAGE
    return _print_report(ctx, report)


def _failed_installs(ctx: CliContext) -> int:
    with ctx.client() as client:
        ops = client.operations(kind="install", state="failed")
    if ctx.json:
        print_json(ops, ctx.out)
        return exitcodes.OK
    rows = [{"operation": op.get("id"), "zip": (op.get("request") or {}).get("filename")
             or (op.get("request") or {}).get("path"),
             "code": (op.get("error") or {}).get("code"), "error": (op.get("error") or {}).get("detail")}
            for op in ops]
    table(rows, ["operation", "zip", "code", "error"], ctx.out, empty="(no failed installs)")
    return exitcodes.OK


def list_versions(ctx: CliContext) -> int:
    if ctx.args.failed:
        return _failed_installs(ctx)
    with ctx.client() as client:
        rows = client.list_versions(name=ctx.args.name, state=ctx.args.state)
    if ctx.json:
        print_json(rows, ctx.out)
    else:
        shown = [{**r, "signer": _signer_cell(r)} for r in rows]
        filters = [f"{flag} {value}" for flag, value in (("--state", ctx.args.state), ("--name", ctx.args.name))
                   if value]
        empty = f"(no installed version matches {' '.join(filters)})" if filters else "(no versions installed)"
        table(shown, ["name", "version", "state", "dialect", "supported_pids", "signer", "created_at"], ctx.out,
              empty=empty)
    return exitcodes.OK


def _signer_cell(row: dict[str, Any]) -> str:
    """Who signed a version; flagged when that signer is not (or no longer) trusted."""
    label = str(row.get("signer") or "unknown")
    return label if row.get("signer_trusted") else f"{label} (NOT TRUSTED)"


def show(ctx: CliContext) -> int:
    with ctx.client() as client:
        info = client.show(ctx.args.name, ctx.args.version)
    if ctx.json:
        print_json(info, ctx.out)
        return exitcodes.OK
    workers = info.get("workers") or {}
    last_error = info.get("last_error") or {}
    fields([("name", info.get("name")), ("version", info.get("version")), ("state", info.get("state")),
            ("dialect", info.get("dialect")), ("supported pids", info.get("supported_pids")),
            ("active for", info.get("active_pids")), ("entry point", info.get("entry_point")),
            ("python", info.get("python_version")), ("installed", info.get("created_at")),
            ("signed by", _signer_cell(info)), ("log file", info.get("log_file")),
            ("memory limit", _memory_limit(info.get("memory_limit"))),
            ("sandbox", (workers.get("sandbox") or {}).get("summary")),
            ("last error", last_error_line(last_error) if last_error else None)], ctx.out)
    rows = workers.get("workers") or []
    if rows:
        ctx.out.write("\n")
        table(rows, [k for k in ("index", "pid", "state", "restarts", "sandbox") if any(k in r for r in rows)] or
              sorted(rows[0].keys()), ctx.out)
    return exitcodes.OK


def last_error_line(last_error: dict[str, Any]) -> str:
    """A version's last error for people. Worker failures carry ``code``/``reason``/``exit_code``;
    install and validation failures carry ``code``/``name``/``message``."""
    code = last_error.get("code")
    label = f"[{code} {last_error['name']}]" if last_error.get("name") else f"[{code}]" if code else ""
    text = last_error.get("message") or last_error.get("reason") or last_error.get("detail") or "no reason recorded"
    line = f"{label} {text}".strip()
    if last_error.get("exit_code") is not None:
        line += f" (exit code {last_error['exit_code']})"
    return line


def _memory_limit(limit: Any) -> str | None:
    if not isinstance(limit, dict):
        return None
    if not limit.get("enforced"):
        return f"none ({limit.get('reason')})"
    return f"{limit.get('limit_mb')} MB per worker ({limit.get('mechanism')}: {limit.get('reason')})"


def uninstall(ctx: CliContext) -> int:
    with ctx.client() as client:
        result = client.uninstall(ctx.args.name, ctx.args.version, force=ctx.args.force)
    if ctx.json:
        print_json(result, ctx.out)
    else:
        ctx.out.write(f"uninstalled {ctx.args.name} {ctx.args.version}\n")
        unbound = result.get("unbound_pids") or []
        if unbound:
            # Not an error (the user asked for --force), but the line stops serving these pids.
            error(f"WARNING: pid(s) {', '.join(unbound)} now have no active version; bind them with "
                  "`procvision-runner activate NAME VERSION --pid PID`", ctx.err)
    return exitcodes.OK


def lifecycle(ctx: CliContext) -> int:
    with ctx.client() as client:
        result = client.lifecycle(ctx.args.action, ctx.args.name, ctx.args.version)
    if ctx.json:
        print_json(result, ctx.out)
    else:
        ctx.out.write(f"{ctx.args.name} {ctx.args.version}: {result.get('state')}\n")
    return exitcodes.OK
