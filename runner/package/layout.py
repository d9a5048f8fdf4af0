"""Where the manifest, wheels and requirements sit inside a package zip.

Two layouts are accepted:

* flat: ``manifest.json`` at the archive root (``wheels/`` and ``requirements.txt`` beside it);
* folder: ``<project>/manifest.json`` inside one top folder. ``wheels/`` is either beside the manifest
  (``<project>/wheels/``) or at the archive root, as the public ``procvision-cli package`` writes it
  (``<project>/`` + ``wheels/`` + ``<project>/requirements.sanitized.txt`` + ``.procvision_env.json``).

Works on entry names only; nothing is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PackageErrorCode, RunnerError

MANIFEST = "manifest.json"
WHEELS = "wheels"
#: Requirement files in order of preference (the public packager writes both; the sanitized one has
#: hashes and local paths removed).
REQUIREMENTS = ("requirements.sanitized.txt", "requirements.txt")
ENV_FILE = ".procvision_env.json"
#: Names the installer creates in a version folder; a package must not bring its own.
RESERVED_TOP = ("venv", ".procvision-install.json", ".procvision-requirements.txt")
_IGNORED_TOP = ("__MACOSX",)


@dataclass(frozen=True)
class PackageLayout:
    """Archive paths of the parts of a package (``package_dir`` is "" for the flat layout)."""

    package_dir: str
    manifest: str
    wheels_dir: str | None  # "wheels" or "<project>/wheels"; None if there is none
    wheels: tuple[str, ...]  # archive names of the *.whl files directly in wheels_dir
    requirements: str | None
    env_file: str | None

    def member(self, relative: str) -> str:
        """Archive name of ``relative`` inside the package folder."""
        return f"{self.package_dir}/{relative}" if self.package_dir else relative


def _files_in(names: set[str], folder: str) -> list[str]:
    prefix = f"{folder}/" if folder else ""
    return sorted(n for n in names if n.startswith(prefix) and "/" not in n[len(prefix):] and not n.endswith("/"))


def locate(names: list[str]) -> PackageLayout:
    """Find the package parts among the archive's entry names (2002 if there is no single manifest)."""
    files = {n for n in names if not n.endswith("/")}
    tops = {n.split("/", 1)[0] for n in names}
    for reserved in RESERVED_TOP:
        if reserved in tops:
            raise RunnerError(PackageErrorCode.INVALID_ZIP,
                              f"the archive has a top-level {reserved!r}, a name the runner reserves for the "
                              "installed package; remove it (venvs are built at install time)", entry=reserved)
    if MANIFEST in files:
        package_dir = ""
    else:
        candidates = sorted(n.rsplit("/", 1)[0] for n in files
                            if n.count("/") == 1 and n.endswith(f"/{MANIFEST}")
                            and n.split("/", 1)[0] not in _IGNORED_TOP)
        if not candidates:
            raise RunnerError(PackageErrorCode.MANIFEST_MISSING,
                              "no manifest.json at the archive root or in a top folder; the package needs "
                              "manifest.json (name, version, entry_point, supported_pids)")
        if len(candidates) > 1:
            raise RunnerError(PackageErrorCode.MANIFEST_MISSING,
                              f"several top folders hold a manifest.json ({', '.join(candidates)}); a package "
                              "zip must contain exactly one algorithm", folders=candidates)
        package_dir = candidates[0]
    prefix = f"{package_dir}/" if package_dir else ""
    wheels_dir: str | None = None
    for candidate in (f"{prefix}{WHEELS}", WHEELS):
        if any(n.startswith(f"{candidate}/") for n in names):
            wheels_dir = candidate
            break
    wheels = tuple(n for n in _files_in(files, wheels_dir) if n.endswith(".whl")) if wheels_dir else ()
    requirements = next((f"{prefix}{r}" for r in REQUIREMENTS if f"{prefix}{r}" in files), None)
    env_file = next((c for c in (f"{prefix}{ENV_FILE}", ENV_FILE) if c in files), None)
    return PackageLayout(package_dir=package_dir, manifest=f"{prefix}{MANIFEST}", wheels_dir=wheels_dir,
                         wheels=wheels, requirements=requirements, env_file=env_file)
