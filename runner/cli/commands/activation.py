"""active, activate, switch, rollback, deactivate."""

from __future__ import annotations

from typing import Any

from .. import exitcodes
from ..context import CliContext, add_common
from ..output import print_json, table


def register(sub: Any) -> None:
    p = sub.add_parser("active", help="which version serves each pid")
    add_common(p)
    p.set_defaults(func=active)

    for command, text, func in (("activate", "bind pids to a version", activate),
                                ("switch", "move pids to a version once it is ready", switch)):
        p = sub.add_parser(command, help=text)
        p.add_argument("name")
        p.add_argument("version")
        p.add_argument("--pid", dest="pids", action="append", required=True, metavar="PID",
                       help="product id (repeatable)")
        if command == "activate":
            p.add_argument("--memory-limit-mb", type=int, default=None, metavar="MB",
                           help="memory limit of each of the version's workers (0: none); default: the "
                                "version's current one, else the worker_memory_limit_mb setting")
        add_common(p)
        p.set_defaults(func=func)

    for command, text, func in (("rollback", "move each pid back to the version that served it before (twice: back "
                                             "where it started)", rollback),
                                ("deactivate", "unbind pids", deactivate)):
        p = sub.add_parser(command, help=text)
        p.add_argument("--pid", dest="pids", action="append", required=True, metavar="PID",
                       help="product id (repeatable)")
        add_common(p)
        p.set_defaults(func=func)


def _print_active(ctx: CliContext, mapping: dict[str, Any]) -> None:
    rows = [{"pid": pid, **binding} for pid, binding in sorted(mapping.items())]
    table(rows, ["pid", "name", "version", "activated_at"], ctx.out, empty="(no pid is active)")


def active(ctx: CliContext) -> int:
    with ctx.client() as client:
        mapping = client.active()
    if ctx.json:
        print_json(mapping, ctx.out)
    else:
        _print_active(ctx, mapping)
    return exitcodes.OK


def change_line(change: dict[str, Any]) -> str:
    """``A01: my_algo 0.2.0 -> 0.1.0`` (the name once when it stays the same)."""
    old, new = change.get("from") or {}, change.get("to") or {}
    if not new:
        return f"{change.get('pid')}: {old.get('name')} {old.get('version')} -> (none)"
    if not old:
        return f"{change.get('pid')}: (none) -> {new.get('name')} {new.get('version')}"
    if old.get("name") == new.get("name"):
        if old.get("version") == new.get("version"):
            return f"{change.get('pid')}: {new.get('name')} {new.get('version')} (unchanged)"
        return f"{change.get('pid')}: {new.get('name')} {old.get('version')} -> {new.get('version')}"
    return f"{change.get('pid')}: {old.get('name')} {old.get('version')} -> {new.get('name')} {new.get('version')}"


def _show(ctx: CliContext, result: dict[str, Any]) -> int:
    if ctx.json:
        print_json(result, ctx.out)
        return exitcodes.OK
    changes = result.get("changes")
    if changes is None:  # a daemon from before "changes" existed
        _print_active(ctx, result.get("active") or {})
        return exitcodes.OK
    for change in changes:
        ctx.out.write(change_line(change) + "\n")
    for gone in result.get("pruned") or []:
        ctx.out.write(f"removed {gone.get('name')} {gone.get('version')}: only the {result.get('retain_versions')} "
                      "most recently active versions are kept (setting retain_versions)\n")
    return exitcodes.OK


def activate(ctx: CliContext) -> int:
    with ctx.client() as client:
        return _show(ctx, client.activate(ctx.args.name, ctx.args.version, ctx.args.pids,
                                          ctx.args.memory_limit_mb))


def switch(ctx: CliContext) -> int:
    with ctx.client() as client:
        return _show(ctx, client.switch(ctx.args.name, ctx.args.version, ctx.args.pids))


def rollback(ctx: CliContext) -> int:
    with ctx.client() as client:
        return _show(ctx, client.rollback(ctx.args.pids))


def deactivate(ctx: CliContext) -> int:
    with ctx.client() as client:
        return _show(ctx, client.deactivate(ctx.args.pids))
