"""Build the offline station bundle: ``dist/procvision-runner-<version>-py<X.Y>-<platform>.tar.gz``.

Runs on a connected machine (``./dev bundle``) with the dev venv's interpreter. The bundle holds:

    wheels/            the runner wheel, the SDK wheel (written by the SDK itself: the public index
                       has an unrelated project of the same name) and every dependency wheel for the
                       target Python and platform (uv included)
    install.sh         the station installer (no network)
    systemd/           the unit the installer renders for --systemd
    doc/               operations.md (install, service, configuration), for the station
    example/           the example algorithm's offline package zip, built for the same target
    bundle.env         version, target Python and platform, read by install.sh
    SHA256SUMS         checksums of every file above, checked by install.sh first

Dependency wheels come from ``pip download`` for the target; ``--wheels-from DIR --offline`` builds
from local folders only (what the tests do).
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
SDK_DIST = "procvision-algorithm-sdk"
STEP_TIMEOUT_S = 900.0


class BundleError(Exception):
    """A step of the bundle build failed; the message says which and what to do."""


def say(message: str) -> None:
    sys.stderr.write(f"bundle: {message}\n")
    sys.stderr.flush()


def run(cmd: list[str], what: str, timeout: float = STEP_TIMEOUT_S) -> None:
    """Run one build step; BundleError with the tail of its output if it fails or hangs."""
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, check=False, cwd=REPO)
    except subprocess.TimeoutExpired:
        raise BundleError(f"{what} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.decode("utf-8", "replace").strip().splitlines()[-15:])
        raise BundleError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def runner_version() -> str:
    text = (REPO / "runner" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not match:
        raise BundleError("runner/__init__.py has no __version__")
    return match.group(1)


def build_runner_wheel(dest: Path) -> Path:
    """The runner's wheel, built by its own build backend from this checkout (no build isolation:
    hatchling comes from the dev venv, so this step needs no network)."""
    try:
        import hatchling  # noqa: F401
    except ImportError:
        raise BundleError("hatchling is missing from this venv: run ./dev setup") from None
    with tempfile.TemporaryDirectory(prefix="bundle-runner-") as tmp:
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
             "--disable-pip-version-check", "--quiet", "-w", tmp, str(REPO)], "building the runner wheel")
        built = sorted(Path(tmp).glob("procvision_runner-*.whl"))
        if len(built) != 1:
            raise BundleError(f"expected one runner wheel, found {[p.name for p in built]}")
        target = dest / built[0].name
        shutil.copy2(built[0], target)
    return target


def wheel_requirements(wheel: Path) -> list[str]:
    """``Requires-Dist`` of ``wheel`` without extras-only entries and without the SDK (bundled)."""
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(zf.read(meta_name).decode("utf-8"))
    out = []
    for req in meta.get_all("Requires-Dist") or []:
        if "extra ==" in req:
            continue
        name = re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]
        if name.lower().replace("_", "-") == SDK_DIST:
            continue
        out.append(req)
    return out


def download_dependencies(requirements: list[str], dest: Path, python: str, platform: str,
                          wheels_from: list[Path], offline: bool) -> None:
    """Every wheel ``requirements`` need on the target, by pip's resolver for that target."""
    from procvision_algorithm_sdk.cli.targets import expand_platform

    major, minor = python.split(".")[:2]
    req_file = dest.parent / "requirements.bundle.txt"
    req_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input", "--quiet",
           "-r", str(req_file), "-d", str(dest), "--only-binary=:all:", "--python-version", f"{major}.{minor}",
           "--implementation", "cp", "--abi", f"cp{major}{minor}"]
    for plat in expand_platform(platform):
        cmd += ["--platform", plat]
    for folder in wheels_from:
        cmd += ["--find-links", str(folder)]
    if offline:
        cmd.append("--no-index")
    run(cmd, f"downloading the dependency wheels for Python {python} on {platform}")
    req_file.unlink()
    for stray in dest.glob("procvision_algorithm_sdk-*.whl"):
        stray.unlink()  # the public namesake: never ship it


def build_example(dest: Path, python: str, platform: str, wheel_dir: Path) -> Path:
    """The example algorithm's offline zip for the target, from the wheels already in the bundle."""
    cmd = [sys.executable, "-m", "procvision_algorithm_sdk.cli.main", "package", str(REPO / "example-algorithm"),
           "-o", str(dest), "--python-version", python, "--platform", platform,
           "--wheels-from", str(wheel_dir), "--offline"]
    run(cmd, "packaging the example algorithm")
    zips = sorted(dest.glob("*-offline.zip"))
    if len(zips) != 1:
        raise BundleError(f"expected one example package, found {[p.name for p in zips]}")
    return zips[0]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build(python: str, platform: str, out_dir: Path, wheels_from: list[Path], offline: bool) -> Path:
    """Build the bundle for one target into ``out_dir``; return the tarball's path."""
    if not re.fullmatch(r"3\.\d+", python):
        raise BundleError(f"--python must look like 3.11, got {python!r}")
    version = runner_version()
    name = f"procvision-runner-{version}-py{python}-{platform}"
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:
        top = Path(tmp) / name
        wheels = top / "wheels"
        wheels.mkdir(parents=True)
        say(f"[1/5] building the runner wheel ({version})")
        runner_wheel = build_runner_wheel(wheels)
        requirements = wheel_requirements(runner_wheel)
        say(f"[2/5] collecting {len(requirements)} dependencies and theirs for Python {python} on {platform}"
            + (" (offline)" if offline else ""))
        download_dependencies(requirements, wheels, python, platform, wheels_from, offline)
        say("[3/5] writing the SDK wheel")
        from procvision_algorithm_sdk.wheel_builder import build_sdk_wheel

        build_sdk_wheel(wheels)
        say(f"      {len(list(wheels.glob('*.whl')))} wheels")
        say("[4/5] packaging the example algorithm")
        build_example(top / "example", python, platform, wheels)
        shutil.copy2(PACKAGING / "install.sh", top / "install.sh")
        (top / "install.sh").chmod(0o755)
        (top / "systemd").mkdir()
        (top / "doc").mkdir()
        shutil.copy2(REPO / "docs" / "operations.md", top / "doc" / "operations.md")
        shutil.copy2(PACKAGING / "systemd" / "procvision-runner.service", top / "systemd")
        (top / "bundle.env").write_text(f"PV_VERSION={version}\nPV_PYTHON={python}\nPV_PLATFORM={platform}\n",
                                        encoding="utf-8")
        files = sorted(p for p in top.rglob("*") if p.is_file())
        sums = "".join(f"{sha256(p)}  {p.relative_to(top).as_posix()}\n" for p in files)
        (top / "SHA256SUMS").write_text(sums, encoding="utf-8")
        say(f"[5/5] writing {name}.tar.gz")
        target = out_dir / f"{name}.tar.gz"
        partial = out_dir / f".{name}.tar.gz.{os.getpid()}.tmp"
        try:
            # Wheels are compressed already: a low level saves minutes for a few percent.
            with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
                tar.add(top, arcname=name, filter=_tar_filter)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    say(f"done in {time.monotonic() - started:.0f} s: {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev bundle", description="Build the offline station bundle.")
    parser.add_argument("--python", default=f"{sys.version_info.major}.{sys.version_info.minor}",
                        help="the station's Python, e.g. 3.11 (default: this interpreter's)")
    parser.add_argument("--platform", default="manylinux_2_28_x86_64",
                        help="the station's wheel platform, e.g. manylinux_2_28_x86_64 or manylinux_2_28_aarch64")
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default dist/)")
    parser.add_argument("--wheels-from", type=Path, action="append", default=[], metavar="DIR",
                        help="also take wheels from DIR (repeatable)")
    parser.add_argument("--offline", action="store_true", help="use only --wheels-from folders, no index")
    args = parser.parse_args(argv)
    try:
        print(build(args.python, args.platform, args.out.resolve(), [p.resolve() for p in args.wheels_from],
                    args.offline))
    except BundleError as exc:
        sys.stderr.write(f"bundle: error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
