"""``validate --zip``: check an offline package without installing it.

Layout safety, where the manifest lives (archive root, or one top-level folder as the public
packager writes it), requirements, the target in ``.procvision_env.json``, and that every
requirement and every dependency of every bundled wheel can be satisfied from ``wheels/`` on that
target. Needs ``packaging`` (the ``cli`` extra), imported here and nowhere at SDK import time.
"""

from __future__ import annotations

import email.parser
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import zipsafety
from ..json_document import load_json_document
from ..manifest import Manifest, ManifestError, parse_manifest_bytes
from .project import is_sdk_requirement
from .report import Report
from .zip_entry_point import check_entry_point, check_imports
from .zip_requirements import Pinned, hash_problems, parse_requirements

REQUIREMENT_FILES = ("requirements.sanitized.txt", "requirements.txt")


class MissingPackaging(RuntimeError):
    """``packaging`` is not installed; the message says how to get it."""


def _require_packaging() -> None:
    try:
        import packaging  # noqa: F401
    except ImportError:
        raise MissingPackaging("checking a zip needs the 'packaging' library: "
                               "pip install 'procvision-algorithm-sdk[cli]' (or pip install packaging)") from None


def unsafe_names(zf: zipfile.ZipFile) -> list[str]:
    """Every entry whose name or type the runner refuses (escaping paths, links, over-long or too-deep
    names, ...), one message each; the rules are the runner's (``procvision_algorithm_sdk.zipsafety``)."""
    bad = []
    for info in zf.infolist():
        try:
            zipsafety.check_name(info)
        except zipsafety.ZipProblem as problem:
            bad.append(problem.message)
            continue
        kind, _mode = zipsafety.entry_kind(info)
        if kind not in ("file", "dir"):
            bad.append(f"entry {info.filename!r} is {kind}; only regular files and folders are allowed")
    return bad


def find_base(names: list[str]) -> tuple[str | None, str]:
    """The folder prefix holding manifest.json (``""`` = archive root), or None and why not."""
    if "manifest.json" in names:
        return "", "manifest.json at the archive root"
    candidates = sorted({n.split("/", 1)[0] for n in names if n.count("/") == 1 and n.endswith("/manifest.json")})
    if len(candidates) == 1:
        return candidates[0] + "/", f"manifest.json in top-level folder {candidates[0]}/"
    if candidates:
        return None, f"several top-level folders hold a manifest.json ({', '.join(candidates)}); keep one"
    return None, ("no manifest.json at the archive root or in a single top-level folder "
                  "(is this a ProcVision package zip?)")


@dataclass
class Wheel:
    """A bundled wheel: its entry name in the zip and what its file name says."""

    entry: str
    filename: str
    name: str
    version: Any
    tags: Any


def _read_wheels(zf: zipfile.ZipFile, names: list[str], dirs: list[str], report: Report) -> list[Wheel]:
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    wheels: list[Wheel] = []
    invalid: list[str] = []
    for n in names:
        folder, _, filename = n.rpartition("/")
        if folder + "/" not in dirs or not filename.endswith(".whl"):
            continue
        try:
            name, version, _build, tagset = parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            invalid.append(f"{filename}: {exc}")
            continue
        wheels.append(Wheel(n, filename, str(name), version, tagset))
    if invalid:
        report.fail("wheels", "invalid wheel file names:\n" + "\n".join(invalid))
    elif not wheels:
        report.fail("wheels", f"no wheels found in {' or '.join(dirs)}: a package must bundle every wheel "
                              "it installs (run procvision-cli package)")
    else:
        folders = sorted({w.entry.rpartition("/")[0] + "/" for w in wheels})
        report.pass_("wheels", f"{len(wheels)} wheel(s) in {', '.join(folders)}")
    return wheels


def _wheel_metadata(zf: zipfile.ZipFile, wheel: Wheel) -> tuple[list[str], str | None]:
    """``Requires-Dist`` lines and ``Requires-Python`` from the wheel's METADATA."""
    data = io.BytesIO(zf.read(wheel.entry))
    try:
        zipsafety.check_end_record(zipsafety.read_end_record(data), zipsafety.ZipLimits())
    except zipsafety.ZipProblem as problem:
        raise ValueError(f"{wheel.filename}: {problem.message}") from problem
    with zipfile.ZipFile(data) as inner:
        meta_names = [n for n in inner.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if not meta_names:
            raise ValueError(f"{wheel.filename} has no *.dist-info/METADATA")
        msg = email.parser.BytesParser().parsebytes(inner.read(meta_names[0]), headersonly=True)
    return list(msg.get_all("Requires-Dist") or []), msg.get("Requires-Python")


class _Resolver:
    """Walks the dependency closure of the top-level requirements through the bundled wheels."""

    def __init__(self, zf: zipfile.ZipFile, wheels: list[Wheel], target: Any) -> None:
        from packaging.utils import canonicalize_name

        self.zf = zf
        self.target = target
        self.env = target.marker_environment()
        self.by_name: dict[str, list[Wheel]] = {}
        for w in wheels:
            self.by_name.setdefault(canonicalize_name(w.name), []).append(w)
        self.chosen: dict[str, Wheel] = {}
        self.problems: list[str] = []
        self._done: set[tuple[str, str]] = set()
        self._python_ok: dict[str, str | None] = {}
        self._metadata: dict[str, tuple[list[str], str | None]] = {}

    def metadata(self, wheel: Wheel) -> tuple[list[str], str | None]:
        """The wheel's Requires-Dist and Requires-Python, read once."""
        if wheel.entry not in self._metadata:
            self._metadata[wheel.entry] = _wheel_metadata(self.zf, wheel)
        return self._metadata[wheel.entry]

    def _applies(self, req: Any, extras: tuple[str, ...]) -> bool:
        if req.marker is None:
            return True
        return any(req.marker.evaluate({**self.env, "extra": e}) for e in extras or ("",))

    def _python_problem(self, wheel: Wheel) -> str | None:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        if wheel.entry not in self._python_ok:
            problem = None
            try:
                _deps, requires_python = self.metadata(wheel)
                if requires_python and not SpecifierSet(requires_python).contains(
                        self.env["python_full_version"], prereleases=True):
                    problem = f"{wheel.filename} requires Python {requires_python}"
            except (InvalidSpecifier, ValueError, zipfile.BadZipFile) as exc:
                problem = f"{wheel.filename} is unreadable: {exc}"
            self._python_ok[wheel.entry] = problem
        return self._python_ok[wheel.entry]

    def resolve(self, req: Any, origin: str, parent_extras: tuple[str, ...] = ()) -> None:
        from packaging.utils import canonicalize_name

        if not self._applies(req, parent_extras):
            return
        name = canonicalize_name(req.name)
        target = self.target.describe()
        if name in self.chosen:
            wheel = self.chosen[name]
            if not req.specifier.contains(wheel.version, prereleases=True):
                self.problems.append(f"{req} (needed by {origin}) conflicts with {wheel.filename} "
                                     "chosen for another requirement")
                return
        else:
            candidates = self.by_name.get(name, [])
            if not candidates:
                self.problems.append(f"{req} (needed by {origin}): no wheel for {req.name} in wheels/")
                return
            fitting = [w for w in candidates if w.tags & self.target.tag_set]
            if not fitting:
                files = ", ".join(sorted(w.filename for w in candidates))
                self.problems.append(f"{req} (needed by {origin}): {files} does not fit the target {target}")
                return
            in_range = [w for w in fitting if req.specifier.contains(w.version, prereleases=True)]
            if not in_range:
                versions = ", ".join(sorted(str(w.version) for w in fitting))
                self.problems.append(f"{req} (needed by {origin}): bundled version(s) {versions} do not satisfy "
                                     f"'{req.specifier}'")
                return
            usable = [w for w in in_range if self._python_problem(w) is None]
            if not usable:
                reasons = "; ".join(str(self._python_problem(w)) for w in in_range)
                self.problems.append(f"{req} (needed by {origin}): {reasons}, but the target is {target}")
                return
            wheel = max(usable, key=lambda w: (w.version, w.filename))
            self.chosen[name] = wheel
        for extra in ("", *sorted(req.extras)):
            if (name, extra) in self._done:
                continue
            self._done.add((name, extra))
            self._walk(wheel, extra)

    def _walk(self, wheel: Wheel, extra: str) -> None:
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            deps, _ = self.metadata(wheel)
        except (ValueError, zipfile.BadZipFile) as exc:
            self.problems.append(f"{wheel.filename} is unreadable: {exc}")
            return
        for line in deps:
            try:
                dep = Requirement(line)
            except InvalidRequirement as exc:
                self.problems.append(f"{wheel.filename} declares an invalid requirement {line!r}: {exc}")
                continue
            if dep.marker is not None and not dep.marker.evaluate({**self.env, "extra": extra}):
                continue
            self.resolve(dep, wheel.filename, (extra,) if extra else ())


def _read_target(zf: zipfile.ZipFile, names: list[str], base: str, report: Report) -> Any:
    from .targets import ENV_FILE, TargetError, running_target, target_from_env_json

    for prefix in dict.fromkeys((base, "")):
        entry = prefix + ENV_FILE
        if entry in names:
            try:
                target = target_from_env_json(load_json_document(zf.read(entry)), entry)
            except (ValueError, TargetError) as exc:
                report.fail("target", f"{entry} is invalid: {exc}")
                return None
            report.pass_("target", f"{target.describe()} (from {entry})")
            return target
    target = running_target()
    report.pass_("target", f"{target.describe()} (no {ENV_FILE}: checking against the running interpreter)")
    return target


def validate_zip(path: str | Path) -> Report:
    """Check an offline package zip; the report names every problem found."""
    _require_packaging()
    report = Report()
    p = Path(path)
    limits = zipsafety.ZipLimits()
    try:
        zf = zipsafety.open_zip(p, limits)
    except zipsafety.ZipProblem as problem:
        report.fail("zip_open", f"{p.name}: {problem.message} (the runner refuses this archive)")
        return report
    with zf:
        names = zf.namelist()
        report.pass_("zip_open", f"{p.name}: {len(names)} entries")
        bad = unsafe_names(zf)
        if bad:
            report.fail("zip_layout", "unsafe entries (the runner refuses this archive):\n" + "\n".join(bad[:20]))
            return report
        try:
            zipsafety.check_archive(zf, limits)
        except zipsafety.ZipProblem as problem:
            report.fail("zip_layout", f"{problem.message} (the runner refuses this archive)")
            return report
        report.pass_("zip_layout", "entry names, types, sizes and data layout pass the runner's archive rules "
                                   "(with its default limits)")
        base, where = find_base(names)
        if base is None:
            report.fail("manifest", where)
            return report
        manifest = _check_manifest(zf, base, where, report)
        check_entry_point(zf, base, manifest, report)
        req_entry = next((base + f for f in REQUIREMENT_FILES if base + f in names), None)
        parsed = None
        if req_entry is None:
            report.fail("requirements", f"neither {' nor '.join(base + f for f in REQUIREMENT_FILES)} is in the zip")
        else:
            parsed = parse_requirements(zf.read(req_entry).decode("utf-8-sig", errors="replace"), req_entry,
                                         report)
        reqs, pinned = parsed if parsed is not None else (None, [])
        target = _read_target(zf, names, base, report)
        _check_python_requires(manifest, target, report)
        # Like the runner: wheels/ beside the manifest wins, else wheels/ at the archive root.
        candidates = list(dict.fromkeys([base + "wheels/", "wheels/"]))
        wheel_dirs = [next((d for d in candidates if any(n.startswith(d) for n in names)), candidates[0])]
        wheels = _read_wheels(zf, names, wheel_dirs, report)
        if wheels:
            check_imports(zf, base, manifest, [w.entry for w in wheels], report)
        else:
            report.skip("imports", "needs the bundled wheels")
        if reqs is None or target is None or not wheels:
            report.skip("dependencies", "needs valid requirements, target and wheels")
            return report
        _check_dependencies(zf, wheels, target, reqs, pinned, req_entry or "", report)
    return report


def _check_manifest(zf: zipfile.ZipFile, base: str, where: str, report: Report) -> Manifest | None:
    try:
        manifest = parse_manifest_bytes(zf.read(base + "manifest.json"))
    except ManifestError as exc:
        report.fail("manifest", f"{where}: {exc}")
        return None
    report.pass_("manifest", f"{manifest.name} {manifest.version} ({where})")
    return manifest


def _check_python_requires(manifest: Manifest | None, target: Any, report: Report) -> None:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if manifest is None or target is None or not manifest.python_requires:
        report.skip("python_requires", "manifest declares no python_requires")
        return
    try:
        spec = SpecifierSet(manifest.python_requires)
    except InvalidSpecifier as exc:
        report.fail("python_requires", f"manifest python_requires {manifest.python_requires!r} is invalid: {exc}")
        return
    version = target.marker_environment()["python_full_version"]
    if spec.contains(version, prereleases=True):
        report.pass_("python_requires", f"target Python {target.python_version} satisfies '{spec}'")
    else:
        report.fail("python_requires", f"manifest requires Python '{spec}' but the package targets "
                                       f"{target.describe()}")


def _check_dependencies(zf: zipfile.ZipFile, wheels: list[Wheel], target: Any, reqs: list[Any],
                        pinned: list[Pinned], source: str, report: Report) -> None:
    resolver = _Resolver(zf, wheels, target)
    for req in reqs:
        resolver.resolve(req, source)
    resolver.problems += hash_problems(zf, resolver.chosen, pinned, source)
    if not any(is_sdk_requirement(str(r.name)) for r in reqs):
        resolver.problems.append(f"{source} does not list procvision-algorithm-sdk: the worker adapter is "
                                 "installed from it (procvision-cli package adds it)")
    if resolver.problems:
        report.fail("dependencies", "\n".join(resolver.problems))
        return
    chosen = ", ".join(sorted(w.filename for w in resolver.chosen.values()))
    report.pass_("dependencies", f"all requirements install offline on the target: {chosen}")
