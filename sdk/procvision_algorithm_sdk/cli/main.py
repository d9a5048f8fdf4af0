"""``procvision-cli`` entry point: parses the command line and maps outcomes to exit codes.

Exit codes: 0 success (validate: every check passed), 1 a check or the command failed,
2 the command line was unusable.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TextIO

from .project import UsageError

#: The command modules. Loaded by module name: the package's ``validate``, ``run`` and ``package``
#: attributes are the public SDK's functions of those names (public_api), not these modules.
COMMANDS = [importlib.import_module(f"{__package__}.{name}") for name in ("init", "validate", "run", "package",
                                                                                  "keygen", "sign")]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="procvision-cli",
                                     description="Create, check, run and package ProcVision algorithms.")
    parser.add_argument("--version", action="version", version=f"procvision-cli {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``procvision-cli`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage and 0 on --help/--version
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.handler(args, out, err))
    except UsageError as exc:
        err.write(f"procvision-cli {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
