"""``procvision-cli validate``: check a project (in-process or ``--full``) or an offline zip (``--zip``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from .images import ImageLoadError, load_image, synthetic_image
from .project import UsageError, project_dir
from .report import Report


def add_parser(sub: Any) -> None:
    p = sub.add_parser("validate", help="check a project or an offline package zip",
                       description="Check manifest, entry point, get_info() and a smoke pre_execute/execute. "
                                   "Exit 0 when every check passes, 1 when one fails.")
    p.add_argument("project", nargs="?", default=".", help="project folder (default: current folder)")
    p.add_argument("--full", action="store_true", help="run the checks through a real worker subprocess")
    p.add_argument("--zip", dest="zip_path", metavar="ZIP", help="check an offline package zip instead")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--pid", help="product id for the smoke test (default: the first supported pid)")
    p.add_argument("--image", help="image file for the smoke test (PNG/JPEG/BMP or .npy; default: synthetic)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each worker reply (--full)")
    # The public procvision-cli's validate options.
    p.add_argument("--manifest", help="path of the project's manifest.json (instead of PROJECT)")
    p.add_argument("--entry", help="module:Class to check instead of the manifest's entry_point (--full)")
    p.add_argument("--tail-logs", action="store_true",
                   help="accepted for compatibility: the worker's log is quoted in any failed check")
    p.add_argument("--legacy-validate", action="store_true",
                   help="public SDK 0.0.x option: check in this process (what validate does without --full)")
    p.set_defaults(handler=command)


def command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.zip_path and args.full:
        raise UsageError("--zip and --full cannot be combined: --zip checks an archive without running it")
    report: Report
    if args.zip_path:
        from .zipcheck import MissingPackaging, validate_zip

        zpath = Path(args.zip_path)
        if not zpath.is_file():
            raise UsageError(f"zip file not found: {zpath}")
        try:
            report = validate_zip(zpath)
        except MissingPackaging as exc:
            err.write(f"error: {exc}\n")
            return 1
    else:
        if args.manifest:
            manifest_path = Path(args.manifest).expanduser()
            if manifest_path.name != "manifest.json" or not manifest_path.is_file():
                raise UsageError(f"--manifest must name an existing manifest.json, got {manifest_path}")
            project = project_dir(manifest_path.parent)
        else:
            project = project_dir(args.project)
        if not args.json:
            # Say so at once: importing the algorithm (numpy, models) and the smoke calls take a while.
            how = "in a worker process" if args.full else "in this process"
            err.write(f"validating {project} {how}: manifest, entry point, get_info, pre_execute/execute\n")
            err.flush()
        from .checks import validate_full, validate_in_process

        try:
            image = load_image(args.image) if args.image else synthetic_image()
        except ImageLoadError as exc:
            raise UsageError(str(exc)) from None
        if args.full and not args.legacy_validate:
            report = validate_full(project, args.pid, image, handshake_timeout=args.timeout,
                                   call_timeout=args.timeout, entry=args.entry)
        else:
            report = validate_in_process(project, args.pid, image)
    report.render(out, as_json=args.json)
    return 0 if report.ok else 1
