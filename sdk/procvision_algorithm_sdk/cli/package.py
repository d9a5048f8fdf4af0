"""``procvision-cli package``: build ``<name>-v<version>-offline.zip`` for a target Python/platform.

The zip holds ``manifest.json`` at its root, the project source, ``requirements.txt`` (the project's
requirements with the SDK pinned to the version that built the package), ``.procvision_env.json``
(the target) and ``wheels/`` with every wheel the target needs: the SDK wheel, built from this SDK
(never downloaded: another project of the same name is on the public index), plus third-party
wheels fetched with ``pip download``. Entries are sorted and time-stamped 1980-01-01, so packaging
the same project twice gives the same bytes.

Before anything is downloaded the manifest is validated and every ``.py`` file of the project is
compiled (with this interpreter's grammar): a syntax error fails packaging naming ``file:line``
instead of surfacing at install time as a failed smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, TextIO

from ..manifest import Manifest
from ..wheel_builder import REQUIRES_DIST, build_sdk_wheel, sdk_version
from .project import MANIFEST, REQUIREMENTS, is_sdk_requirement, read_manifest, requirement_lines

ENV_FILE = ".procvision_env.json"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
#: Folder names never packaged, wherever they are.
EXCLUDED_DIRS = {"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", ".mypy_cache",
                 ".pytest_cache", ".ruff_cache", ".idea", ".vscode", ".eggs", "node_modules"}
#: Folder names skipped at the project root only (build output and a stale wheels folder).
EXCLUDED_TOP_DIRS = {"dist", "build", "wheels"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo", "-offline.zip", ".zip.tmp", ".DS_Store")
#: Files the packager writes itself at the archive root.
GENERATED = {REQUIREMENTS, "requirements.sanitized.txt", ENV_FILE}


class PackageError(Exception):
    """Packaging failed for a reason the author can fix; the message says how."""


def output_name(manifest: Manifest) -> str:
    return f"{manifest.name}-v{manifest.version}-offline.zip"


def source_files(project: Path) -> list[tuple[str, Path]]:
    """``(archive name, path)`` of every project file to package, sorted by archive name."""
    files: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(project):
        here = Path(root)
        rel_root = here.relative_to(project)
        keep = []
        for d in dirs:
            if d in EXCLUDED_DIRS or d.endswith(".egg-info") or (here / d / "pyvenv.cfg").exists():
                continue
            if rel_root == Path(".") and d in EXCLUDED_TOP_DIRS:
                continue
            keep.append(d)
        dirs[:] = sorted(keep)
        for name in sorted(names):
            rel = (rel_root / name).as_posix()
            if name.endswith(EXCLUDED_SUFFIXES) or (rel_root == Path(".") and name in GENERATED):
                continue
            path = here / name
            if path.is_file():
                files.append((rel, path))
    return sorted(files)


def check_sources(files: Sequence[tuple[str, Path]]) -> None:
    """Compile every ``.py`` among ``(archive name, path)``; PackageError naming each ``file:line``."""
    problems = []
    for rel, path in files:
        if not rel.endswith(".py"):
            continue
        try:
            compile(path.read_bytes(), rel, "exec", dont_inherit=True)
        except SyntaxError as exc:
            where = f"{rel}:{exc.lineno}" if exc.lineno else rel
            text = f"\n    {exc.text.rstrip()}" if exc.text and exc.text.strip() else ""
            problems.append(f"{where}: {type(exc).__name__}: {exc.msg}{text}")
        except ValueError as exc:  # e.g. NUL bytes in the source
            problems.append(f"{rel}: cannot be compiled: {exc}")
    if problems:
        raise PackageError("the project has Python files that do not compile; fix them and package again:\n"
                           + "\n".join(problems))


def merge_requirements(lines: Sequence[str]) -> list[str]:
    """One line per distribution: plain requirements of the same name are merged (extras and version
    specifiers combined, first position kept); lines with markers or URLs are kept as written, once."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    merged: dict[str, Any] = {}
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            merged.setdefault(line, line)  # pip reports it in its own words
            continue
        if req.marker is not None or req.url:
            merged.setdefault(str(req), str(req))
            continue
        key = f"name:{canonicalize_name(req.name)}"
        previous = merged.get(key)
        if previous is None:
            merged[key] = req
        else:
            previous.extras |= req.extras
            previous.specifier &= req.specifier
    return [str(v) for v in merged.values()]


def _pip_requirements(lines: list[str]) -> list[str]:
    """What pip must download: the project's requirements without the SDK, plus the SDK's own needs."""
    third = [line for line in lines if not line.startswith("-") and not is_sdk_requirement(line)]
    sdk_deps = [r for r in REQUIRES_DIST if "extra ==" not in r]
    return merge_requirements(third + sdk_deps)


def pip_download(requirements: list[str], dest: Path, target: Any, *, find_links: Sequence[Path] = (),
                 offline: bool = False, timeout: float = 900.0) -> None:
    """Run ``pip download`` for ``target`` into ``dest``; PackageError with pip's own words on failure."""
    from .targets import expand_platform

    req_file = dest.parent / "requirements.download.txt"
    req_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
           "-r", str(req_file), "-d", str(dest), "--only-binary=:all:",
           "--python-version", target.python_version, "--implementation", target.implementation,
           "--abi", target.abi]
    # Older pips do not widen a manylinux_2_X platform to the older tags it can run; do it for them.
    platforms: list[str] = []
    for plat in target.platforms:
        platforms += [p for p in expand_platform(plat) if p not in platforms]
    for plat in platforms:
        cmd += ["--platform", plat]
    for folder in find_links:
        cmd += ["--find-links", str(folder)]
    if offline:
        cmd.append("--no-index")
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise PackageError(f"pip download did not finish within {timeout:.0f}s (network down? "
                           "use --wheels-from DIR --offline)") from None
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.decode("utf-8", "replace").strip().splitlines()[-12:])
        raise PackageError(f"pip download failed for {target.describe()} (exit {proc.returncode}):\n{tail}\n"
                           "Every requirement needs a binary wheel for the target; check the names/versions, "
                           "or supply wheels with --wheels-from DIR")


def _zip_info(name: str, executable: bool = False) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.create_system = 3
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    # Wheels are zips already: storing them saves the time of compressing them again for nothing.
    info.compress_type = zipfile.ZIP_STORED if name.endswith(".whl") else zipfile.ZIP_DEFLATED
    return info


def build_package(project: Path, out_dir: Path, target: Any, *, wheels_from: Sequence[Path] = (),
                  offline: bool = False, pip_timeout: float = 900.0,
                  log: Callable[[str], None] | None = None, requirements: Path | None = None,
                  zip_name: str | None = None) -> Path:
    """Build the offline zip for ``project`` into ``out_dir`` and return its path.

    ``requirements`` replaces ``PROJECT/requirements.txt``; without either the package holds only
    the SDK and its dependencies (the public examples ship no requirements file). ``zip_name``
    replaces ``<name>-v<version>-offline.zip``.
    """
    say = log or (lambda _msg: None)
    # Execute-only projects (public SDK 0.3.x) have no supported_pids.
    manifest = read_manifest(project, pids_required=False)
    check_python_requires(manifest, target)
    req_path = requirements or project / REQUIREMENTS
    if requirements is not None and not req_path.is_file():
        raise PackageError(f"requirements file {req_path} not found")
    if req_path.is_file():
        lines = requirement_lines(req_path.read_text(encoding="utf-8"))
    else:
        say(f"{req_path} not found: packaging the SDK and its dependencies only (add a requirements.txt "
            "listing what the algorithm imports)")
        lines = []
    dropped = [line for line in lines if line.startswith("-")]
    if dropped:
        say(f"ignoring option lines in requirements.txt (the runner installs offline): {', '.join(dropped)}")
    version = sdk_version()
    packaged_reqs = [line for line in lines if not line.startswith("-") and not is_sdk_requirement(line)]
    packaged_reqs.append(f"procvision-algorithm-sdk=={version}")
    files = source_files(project)
    check_sources(files)
    out_dir.mkdir(parents=True, exist_ok=True)
    target_zip = out_dir / (zip_name or output_name(manifest))
    with tempfile.TemporaryDirectory(prefix="procvision-package-") as tmp:
        wheels = Path(tmp) / "wheels"
        wheels.mkdir()
        pip_reqs = _pip_requirements(lines)
        say(f"downloading wheels for {target.describe()}: {', '.join(pip_reqs)}")
        pip_download(pip_reqs, wheels, target, find_links=wheels_from, offline=offline, timeout=pip_timeout)
        for stray in wheels.glob("procvision_algorithm_sdk-*.whl"):
            # A dependency pulled the public namesake from an index: ours replaces it.
            say(f"dropping downloaded {stray.name}: the package carries the SDK that built it")
            stray.unlink()
        sdk_wheel = build_sdk_wheel(wheels)
        say(f"built {sdk_wheel.name}")
        entries: list[tuple[str, bytes, bool]] = [
            (rel, path.read_bytes(), os.access(path, os.X_OK) and not rel.endswith(MANIFEST)) for rel, path in files]
        entries.append((REQUIREMENTS, ("\n".join(packaged_reqs) + "\n").encode(), False))
        entries.append((ENV_FILE, (json.dumps(target.to_env_json(), indent=2, sort_keys=True) + "\n").encode(), False))
        for whl in sorted(wheels.glob("*.whl")):
            entries.append((f"wheels/{whl.name}", whl.read_bytes(), False))
        entries.sort(key=lambda e: e[0])
        tmp_zip = out_dir / f".{target_zip.name}.{os.getpid()}.zip.tmp"
        try:
            with zipfile.ZipFile(tmp_zip, "w") as zf:
                for name, data, executable in entries:
                    info = _zip_info(name, executable)
                    zf.writestr(info, data, compress_type=info.compress_type, compresslevel=6)
            os.replace(tmp_zip, target_zip)
        finally:
            if tmp_zip.exists():
                tmp_zip.unlink()
    say(f"wrote {target_zip} ({len(entries)} entries)")
    return target_zip


def check_python_requires(manifest: Manifest, target: Any) -> None:
    """Raise PackageError if the manifest's ``python_requires`` excludes ``target``'s Python."""
    if not manifest.python_requires:
        return
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        spec = SpecifierSet(manifest.python_requires)
    except InvalidSpecifier as exc:
        raise PackageError(f"manifest.json: python_requires {manifest.python_requires!r} is invalid: {exc}") from None
    if not spec.contains(target.marker_environment()["python_full_version"], prereleases=True):
        raise PackageError(f"manifest.json requires Python '{spec}' but the target is {target.describe()}; "
                           "pass --python-version accordingly")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("package", help="build an offline package zip",
                       description="Build <name>-v<version>-offline.zip with the source, requirements, "
                                   ".procvision_env.json and every wheel the target needs. Target defaults "
                                   "come from the project's .procvision_env.json, else this machine.")
    p.add_argument("project", nargs="?", default=".", help="project folder (default: current folder)")
    p.add_argument("-o", "--output", help="output folder, or the zip's path if it ends in .zip (default: PROJECT/dist)")
    p.add_argument("-r", "--requirements", help="requirements file (default: PROJECT/requirements.txt)")
    p.add_argument("-p", "--python-version", help="target Python, e.g. 3.11 (default: this interpreter's)")
    p.add_argument("--platform", action="append", dest="platforms", default=[],
                   help="target wheel platform tag, e.g. manylinux2014_x86_64 (repeatable; default: this machine's)")
    p.add_argument("-w", "--wheels-platform", help="target wheel platform tag (the public SDK's name for --platform)")
    p.add_argument("-b", "--abi", help="target ABI tag, e.g. cp311 (default: cp<version>)")
    p.add_argument("-i", "--implementation", default=None, help="target implementation tag (default: cp)")
    p.add_argument("--wheels-from", action="append", default=[], metavar="DIR",
                   help="also look for wheels in DIR (pip --find-links; repeatable)")
    p.add_argument("--offline", action="store_true", help="never use an index (pip --no-index)")
    p.add_argument("--pip-timeout", type=float, default=900.0, help="seconds pip download may take")
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="package without running `procvision-cli validate --full` first")
    p.add_argument("--validate-timeout", type=float, default=60.0,
                   help="seconds the validation waits for each worker reply (default 60)")
    from .sign import add_signing_options

    add_signing_options(p, prefix="sign-")
    # The public packager's options: accepted, and refused with a reason where we do not follow them.
    p.add_argument("-a", "--auto-freeze", action="store_true",
                   help="accepted for compatibility; a missing requirements file is never filled by pip freeze")
    p.add_argument("-s", "--skip-download", action="store_true", help="not supported (the zip needs every wheel)")
    p.add_argument("--embed-python", action="store_true", default=False, help="not supported")
    p.add_argument("--no-embed-python", action="store_false", dest="embed_python", help="the default")
    p.add_argument("--python-runtime", help="not supported (see --embed-python)")
    p.add_argument("--runtime-python-version", help="not supported (see --embed-python)")
    p.add_argument("--runtime-abi", help="not supported (see --embed-python)")
    p.set_defaults(handler=command)


def _say(err: TextIO, message: str) -> None:
    err.write(message + "\n")


def _validated(args: argparse.Namespace, err: TextIO) -> bool:
    """Run ``validate --full`` on the project (a worker imports it and answers smoke calls): a
    project that cannot import is not packaged. The report goes to ``err`` when a check fails."""
    from .checks import validate_full
    from .images import synthetic_image
    from .project import project_dir

    project = project_dir(args.project)
    # The packager's own checks first: they name the manifest field or the file and line.
    read_manifest(project, pids_required=False)
    check_sources(source_files(project))
    _say(err, f"validating {project} in a worker process first (skip with --no-validate)")
    report = validate_full(project, None, synthetic_image(), handshake_timeout=args.validate_timeout,
                           call_timeout=args.validate_timeout)
    if report.ok:
        return True
    report.render(err)
    err.write("error: not packaged: the project fails validation (above); fix it, or pass --no-validate to "
              "package it anyway\n")
    return False


def command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..manifest import ManifestError
    from .package_options import PackageRequest, build_planned, plan_package
    from .project import UsageError

    request = PackageRequest(
        project=args.project, output=args.output, requirements=args.requirements, platforms=args.platforms,
        wheels_platform=args.wheels_platform, python_version=args.python_version,
        implementation=args.implementation, abi=args.abi, skip_download=args.skip_download,
        embed_python=args.embed_python or bool(args.python_runtime),
        runtime=args.runtime_python_version or args.runtime_abi, wheels_from=args.wheels_from,
        offline=args.offline, pip_timeout=args.pip_timeout)
    if args.sign_key:
        from .sign import signing_key

        signing_key(args)  # a missing key file fails before anything is downloaded
    elif args.sign_cert or args.sign_chain:
        raise UsageError("--sign-cert and --sign-chain need --sign-key")
    try:
        # Options, target and python_requires first: they fail at once, not after the worker's validation.
        plan = plan_package(request)
        if args.validate and not _validated(args, err):
            return 1
        path = build_planned(plan, log=lambda m: _say(err, m))
    except (PackageError, ManifestError) as exc:
        err.write(f"error: {exc}\n")
        return 1
    if args.sign_key:
        from .sign import sign_package

        if sign_package(path, args, err) != 0:
            return 1
    out.write(f"{path}\n")
    return 0
