"""status: is the daemon up and ready, what is active, which versions are installed."""

from __future__ import annotations

from typing import Any

from .. import exitcodes
from ..context import CliContext, add_common
from ..output import fields, print_json, table


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="daemon readiness, active pids and installed versions")
    add_common(p)
    p.set_defaults(func=status)

    p = sub.add_parser("operation", help="one install operation (state, stages, result or error)")
    p.add_argument("id")
    add_common(p)
    p.set_defaults(func=operation)


def status(ctx: CliContext) -> int:
    with ctx.client() as client:
        ready = client.readyz()
        if not ctx.json:
            # Readiness first, as soon as it is known; the tables need two more requests.
            fields([("daemon", client.url), ("ready", "yes" if ready.get("ready") else "no")], ctx.out)
            for reason in ready.get("reasons") or []:
                ctx.out.write(f"  - {reason}\n")
            ctx.out.write("\n")
            ctx.out.flush()
        active = client.active()
        versions = client.list_versions()
    if ctx.json:
        print_json({"url": client.url, "ready": ready, "active": active, "versions": versions}, ctx.out)
    else:
        table([{"pid": p, **b} for p, b in sorted(active.items())], ["pid", "name", "version"], ctx.out,
              empty="(no pid is active)")
        ctx.out.write("\n")
        table(versions, ["name", "version", "state", "dialect", "sandbox"], ctx.out, empty="(no versions installed)")
    return exitcodes.OK if ready.get("ready") else exitcodes.NOT_READY


def operation(ctx: CliContext) -> int:
    with ctx.client() as client:
        op = client.operation(ctx.args.id)
    if ctx.json:
        print_json(op, ctx.out)
    else:
        problem = op.get("error") or {}
        result = op.get("result") or {}
        done = (f"{'already installed' if result.get('idempotent') else 'installed'}: {result.get('name')} "
                f"{result.get('version')} ({result.get('dialect') or 'dialect unknown'})") if result else None
        fields([("id", op.get("id")), ("state", op.get("state")), ("stages", op.get("stages")),
                ("result", done),
                ("error", f"[{problem.get('code')} {problem.get('name')}] {problem.get('detail')}"
                 if problem else None)], ctx.out)
    return exitcodes.OK if op.get("state") != "failed" else exitcodes.exit_code_for((op.get("error") or {}).get("code"))
