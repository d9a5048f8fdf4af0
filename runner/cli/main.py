"""``procvision-runner`` entry point: parse, run the command, turn failures into exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

import runner
from runner.errors import PackageErrorCode, RunnerError

from . import exitcodes
from .commands import activation, execute, logs, packages, serve, status, trust
from .context import CliContext, SettingsProblem, add_common
from .failures import ApiError, Unreachable
from .output import error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="procvision-runner",
                                     description="Run the ProcVision runner daemon and manage it over its API.")
    parser.add_argument("--version", action="version", version=f"procvision-runner {runner.__version__}")
    add_common(parser, top_level=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (packages, activation, execute, logs, status, serve, trust):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one command; returns its exit code (see ``runner.cli.exitcodes``)."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    ctx = CliContext(args, out or sys.stdout, err or sys.stderr)
    try:
        return int(args.func(ctx))
    except BrokenPipeError:
        # The reader went away (``... | head``): nothing more can be printed, and that is no error.
        _silence_stdout(ctx.out)
        return exitcodes.OK
    except ApiError as exc:
        if ctx.json:
            from .output import print_json

            print_json({"error": exc.problem, "status": exc.status}, ctx.out)
        hint = f" ({ctx.token_hint})" if exc.code == PackageErrorCode.UNAUTHORIZED.value and ctx.token_hint else ""
        error(f"[{exc.code or exc.status} {exc.name or 'error'}] {exc.detail}{hint}", ctx.err)
        return exitcodes.exit_code_for(exc.code) if exc.code else exitcodes.FAILURE
    except RunnerError as exc:
        error(f"[{exc.code} {exc.name}] {exc.message}", ctx.err)
        return exitcodes.exit_code_for(exc.code)
    except Unreachable as exc:
        error(str(exc), ctx.err)
        return exitcodes.UNREACHABLE
    except SettingsProblem as exc:
        error(f"invalid settings: {exc}", ctx.err)
        return exitcodes.USAGE
    except KeyboardInterrupt:
        return 130


def _silence_stdout(out: TextIO) -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise BrokenPipeError again."""
    if out is not sys.stdout:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError) as exc:  # no real file descriptor (captured stdout)
        sys.stderr.write(f"stdout closed: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
