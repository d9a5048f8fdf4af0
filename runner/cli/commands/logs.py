"""logs: the tail of a version's worker log, or follow it (-f)."""

from __future__ import annotations

from typing import Any

from .. import exitcodes
from ..context import CliContext, add_common
from ..output import print_json


def register(sub: Any) -> None:
    p = sub.add_parser("logs", help="a version's worker log")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("-n", "--tail", type=int, default=100, help="how many lines (default 100)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    add_common(p)
    p.set_defaults(func=logs)


def logs(ctx: CliContext) -> int:
    args = ctx.args
    with ctx.client() as client:
        if not args.follow:
            result = client.logs(args.name, args.version, args.tail)
            if ctx.json:
                print_json(result, ctx.out)
            else:
                for line in result.get("lines") or []:
                    ctx.out.write(line + "\n")
            return exitcodes.OK
        try:
            for line in client.follow_logs(args.name, args.version, args.tail):
                ctx.out.write(line + "\n")
                ctx.out.flush()
        except KeyboardInterrupt:
            return exitcodes.OK
    return exitcodes.OK
