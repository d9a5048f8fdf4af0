"""serve and quickstart: run the daemon in this process."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import exitcodes
from ..context import CliContext, add_common

if TYPE_CHECKING:  # the daemon's modules load only when serving: client commands stay fast
    from runner.config import Settings


def _add_serve_options(p: Any) -> None:
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to bind (default 8765; 0 picks a free one)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    p.add_argument("--no-auth", action="store_true", help="serve without the bearer token (trusted hosts only)")
    p.add_argument("--no-watch", action="store_true", help="do not watch the zips/ drop folder")
    p.add_argument("--uds", help="also serve the API on this Unix socket (mode 0600), for local clients")
    add_common(p)


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the daemon: API, drop-folder watcher and workers")
    _add_serve_options(p)
    p.set_defaults(func=serve)

    p = sub.add_parser("quickstart", help="install and activate the example algorithm, then serve")
    _add_serve_options(p)
    p.set_defaults(func=quickstart)


def _settings(ctx: CliContext, default_root: Path | None = None) -> Settings:
    args = ctx.args
    return ctx.settings(root=args.root or default_root, host=args.host, port=args.port, log_level=args.log_level,
                        auth_enabled=False if args.no_auth else None,
                        watch_drop_folder=False if args.no_watch else None,
                        uds_path=getattr(args, "uds", None))


def _announce(ctx: CliContext, settings: Settings, url: str) -> None:
    token_file = settings.layout.token_file
    ctx.out.write(f"ProcVision Runner is serving {url}  (root {settings.layout.root})\n")
    if settings.auth_enabled:
        where = "the configured token" if settings.token else f"token file: {token_file}"
        ctx.out.write(f"  {where}\n")
        ctx.out.write(f'  try: curl -H "Authorization: Bearer $(cat {token_file})" {url}/algorithms/active\n')
    else:
        ctx.out.write(f"  auth is OFF; try: curl {url}/algorithms/active\n")
    ctx.out.write(f"  API docs: {url}/docs   stop: Ctrl-C\n")
    ctx.out.flush()


def serve(ctx: CliContext) -> int:
    from runner.daemon import serve as run_daemon

    settings = _settings(ctx)
    return run_daemon(settings, on_listening=lambda url: _announce(ctx, settings, url))


def quickstart(ctx: CliContext) -> int:
    from runner.daemon import serve as run_daemon

    from ..quickstart import Quickstart

    settings = _settings(ctx, default_root=Path("algorithms"))
    qs = Quickstart(out=ctx.out)

    def announce(url: str) -> None:
        _announce(ctx, settings, url)
        qs.announce(url, settings)

    code = run_daemon(settings, before_serve=qs.prepare, on_listening=announce)
    return code if code else exitcodes.OK
