"""``trust add|list|remove``: the keys and CA certificates packages must be signed with.

Works on the root's trust store directly (``--root``), with or without a running daemon: the daemon
re-reads the store at every install and activation, so a change counts from the next one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import exitcodes
from ..context import CliContext, add_common
from ..output import error, print_json, table


def register(sub: Any) -> None:
    p = sub.add_parser("trust", help="trusted signing keys and CA certificates (<root>/trust/)")
    actions = p.add_subparsers(dest="trust_action", required=True, metavar="ACTION")
    a = actions.add_parser("add", help="trust a public key PEM (procvision-cli keygen's .pub) or a CA certificate")
    a.add_argument("file", type=Path)
    a.add_argument("--name", help="entry name (default: <kind>-<fingerprint prefix>)")
    add_common(a)
    a.set_defaults(func=add)
    a = actions.add_parser("list", help="trusted keys and CA certificates, and the trust mode in force")
    add_common(a)
    a.set_defaults(func=list_entries)
    a = actions.add_parser("remove", help="stop trusting a key or CA (installed versions stay, flagged)")
    a.add_argument("ident", metavar="NAME|FINGERPRINT", help="entry name, or fingerprint (8+ leading hex digits)")
    add_common(a)
    a.set_defaults(func=remove)


def _store(ctx: CliContext) -> Any:
    from runner.trust.store import TrustStore

    return TrustStore(ctx.settings().layout)


def add(ctx: CliContext) -> int:
    path: Path = ctx.args.file
    if not path.is_file():
        error(f"no such file: {path}", ctx.err)
        return exitcodes.USAGE
    entry = _store(ctx).add(path.read_bytes(), ctx.args.name)
    if ctx.json:
        print_json(entry.to_dict(), ctx.out)
    else:
        ctx.out.write(f"trusted {entry.kind} {entry.name} sha256:{entry.fingerprint}\n")
    return exitcodes.OK


def list_entries(ctx: CliContext) -> int:
    from runner.trust.modes import resolve_mode

    store = _store(ctx)
    entries = store.entries()
    setting = ctx.settings().trust_mode
    mode = resolve_mode(setting, store).name
    if ctx.json:
        print_json({"trust_mode": setting, "mode_in_force": mode, "entries": [e.to_dict() for e in entries]}, ctx.out)
        return exitcodes.OK
    ctx.out.write(f"trust_mode {setting}" + (f" (in force: {mode})" if setting == "auto" else "") + "\n")
    rows = [{**e.to_dict(), "fingerprint": f"sha256:{e.fingerprint[:16]}" if e.fingerprint else "",
             "problem": e.problem or ""} for e in entries]
    table(rows, ["name", "kind", "fingerprint", "subject", "not_after", "problem"], ctx.out,
          empty=f"(nothing trusted: {store.folder} is empty)")
    return exitcodes.OK


def remove(ctx: CliContext) -> int:
    entry = _store(ctx).remove(ctx.args.ident)
    if ctx.json:
        print_json(entry.to_dict(), ctx.out)
    else:
        ctx.out.write(f"no longer trusted: {entry.kind} {entry.name} sha256:{entry.fingerprint}; versions it signed "
                      "stay installed, flagged in `list`\n")
    return exitcodes.OK
