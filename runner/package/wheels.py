"""Decide, from wheel file names and metadata only, whether a package's bundled wheels can install.

Before any venv exists: every requirement (``requirements.txt`` / ``requirements.sanitized.txt``, plus
the SDK the adapter comes from) and its dependency closure (``Requires-Dist`` of the chosen wheels,
markers evaluated for the target interpreter) must have a wheel in ``wheels/`` that fits the target
interpreter's tags and the version specifier.

* no wheel with the requirement's name, or none in the right version -> 2004 wheels_missing;
* a requirements line that cannot be honoured offline or cannot be parsed (``requirement_file.py``)
  -> 2004 naming the file and line. (A broken requirements file is not a broken zip (2001) nor a
  manifest problem (2002): it is the list the wheels are checked against, so it shares their code;
  ``details.problem`` tells the cases apart.) A ``name @ file:...whl`` line accepts exactly that
  bundled wheel file;
* a chosen wheel that matches none of its requirement's ``--hash`` values -> 2004 ``hash_mismatch``;
* wheels with that name exist but none fits the interpreter's tags, or every fitting one declares a
  ``Requires-Python`` that excludes the interpreter -> 2003 incompatible_python naming the wheels and the
  interpreter.
"""

from __future__ import annotations

import email.parser
import hashlib
import io
import struct
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import Version

from procvision_algorithm_sdk.zipsafety import ZipLimits, ZipProblem, check_end_record, read_end_record

from ..errors import PackageErrorCode, RunnerError
from .interpreters import Interpreter
from .member_window import stored_member
from .requirement_file import LineRequirement, local_wheel_file, offline_hint, parse_requirements

__all__ = ["LineRequirement", "Resolution", "WheelFile", "check_hashes", "nested_metadata_reader",
           "nested_wheel_digest", "offline_hint", "parse_requirements", "parse_wheel_names", "resolve"]

#: The distribution that provides ``procvision_algorithm_sdk.adapter``: every package must carry it.
SDK_DISTRIBUTION = "procvision-algorithm-sdk"
MAX_METADATA_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class WheelFile:
    """One ``*.whl`` from the package's wheels folder, described by its file name."""

    filename: str
    name: NormalizedName
    version: Version
    tags: frozenset[Tag]


@dataclass
class Resolution:
    """The wheels an install will use: canonical name -> chosen wheel, plus what asked for each."""

    chosen: dict[str, WheelFile] = field(default_factory=dict)
    required_by: dict[str, list[str]] = field(default_factory=dict)

    def pins(self) -> list[str]:
        """``name==version`` lines for the installer, so it installs exactly what was checked."""
        return [f"{w.name}=={w.version}" for w in sorted(self.chosen.values(), key=lambda w: w.name)]


def parse_wheel_names(filenames: Iterable[str]) -> list[WheelFile]:
    """Parse wheel file names (base names); 2004 for a file that is not a valid wheel name."""
    wheels = []
    for filename in filenames:
        try:
            name, version, _build, tags = parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise RunnerError(PackageErrorCode.WHEELS_MISSING,
                              f"wheels/{filename} is not a valid wheel file name ({exc}); download wheels "
                              "with 'pip download --only-binary=:all:'", wheel=filename) from exc
        wheels.append(WheelFile(filename, name, version, frozenset(tags)))
    return wheels


def check_hashes(requirements: list[Requirement], resolution: Resolution,
                 digest: Callable[[WheelFile, str], str]) -> None:
    """2004 if a wheel chosen for a requirement with ``--hash`` values matches none of them.
    ``digest(wheel, algorithm)`` is the hex digest of the bundled wheel file."""
    for req in requirements:
        if not isinstance(req, LineRequirement) or not req.hashes:
            continue
        wheel = resolution.chosen.get(canonicalize_name(req.name))
        if wheel is None:
            continue  # the line's marker excludes this interpreter: nothing of it is installed
        actual = {algorithm: digest(wheel, algorithm) for algorithm in {a for a, _ in req.hashes}}
        if any(actual[algorithm] == expected for algorithm, expected in req.hashes):
            continue
        pinned = ", ".join(f"{a}:{h}" for a, h in req.hashes)
        found = ", ".join(f"{a}:{h}" for a, h in sorted(actual.items()))
        raise RunnerError(PackageErrorCode.WHEELS_MISSING,
                          f"{req.origin}: wheels/{wheel.filename} does not match the hash pinned for {req.name} "
                          f"({pinned}); the bundled wheel is {found}. Bundle the wheel the hash was taken from, "
                          "or update the hash", requirement=str(req), line=req.line, file=req.source,
                          wheel=wheel.filename, expected=[f"{a}:{h}" for a, h in req.hashes], actual=found,
                          problem="hash_mismatch")


def requires_python(metadata: bytes) -> SpecifierSet | None:
    """The ``Requires-Python`` of a wheel's METADATA (None if absent or unreadable)."""
    message = email.parser.BytesParser().parsebytes(metadata, headersonly=True)
    value = message.get("Requires-Python")
    if not value:
        return None
    try:
        return SpecifierSet(str(value))
    except InvalidSpecifier:
        return None


def requires_dist(metadata: bytes) -> list[Requirement]:
    """``Requires-Dist`` entries of a wheel's METADATA."""
    message = email.parser.BytesParser().parsebytes(metadata, headersonly=True)
    result = []
    for value in message.get_all("Requires-Dist") or []:
        try:
            result.append(Requirement(str(value)))
        except InvalidRequirement:
            continue  # a broken dependency line in a third-party wheel is the installer's call
    return result


def read_wheel_metadata(wheel: zipfile.ZipFile, filename: str) -> bytes:
    """The ``*.dist-info/METADATA`` of an open wheel (2001 if there is none)."""
    names = [n for n in wheel.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
    if len(names) != 1:
        raise RunnerError(PackageErrorCode.INVALID_ZIP, f"wheels/{filename} has no single .dist-info/METADATA; "
                          "it is not a valid wheel", entry=filename)
    with wheel.open(names[0]) as handle:
        return handle.read(MAX_METADATA_BYTES)


def nested_metadata_reader(zf: zipfile.ZipFile, wheel_members: dict[str, str],
                           limits: ZipLimits | None = None) -> Callable[[WheelFile], bytes]:
    """A metadata reader for wheels still inside the package zip (``filename -> archive name``).
    A wheel is a zip too: its end records are judged against ``limits`` (default: the SDK's defaults)
    before its central directory is parsed, so a hostile "wheel" costs no more than a hostile package."""
    wheel_limits = limits if limits is not None else ZipLimits()

    def read(wheel: WheelFile) -> bytes:
        member = wheel_members[wheel.filename]
        try:
            window = stored_member(zf, zf.getinfo(member))
            with window if window is not None else zf.open(member) as outer:
                data = outer if outer.seekable() else io.BytesIO(outer.read())
                check_end_record(read_end_record(data), wheel_limits)
                with zipfile.ZipFile(data) as inner:
                    return read_wheel_metadata(inner, wheel.filename)
        except ZipProblem as problem:
            raise RunnerError(PackageErrorCode.INVALID_ZIP, f"wheels/{wheel.filename}: {problem.message}",
                              entry=member, **problem.details) from problem
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error) as exc:
            raise RunnerError(PackageErrorCode.INVALID_ZIP,
                              f"wheels/{wheel.filename} is not a readable wheel: {exc}", entry=member) from exc

    return read


def nested_wheel_digest(zf: zipfile.ZipFile, wheel_members: dict[str, str]) -> Callable[[WheelFile, str], str]:
    """A digest function (for ``check_hashes``) of wheels still inside the package zip
    (``filename -> archive name``), streamed."""

    def digest(wheel: WheelFile, algorithm: str) -> str:
        member = wheel_members[wheel.filename]
        hasher = hashlib.new(algorithm)
        try:
            window = stored_member(zf, zf.getinfo(member))  # the hash is a stronger check than the CRC
            with window if window is not None else zf.open(member) as handle:
                for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                    hasher.update(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise RunnerError(PackageErrorCode.INVALID_ZIP,
                              f"wheels/{wheel.filename} cannot be read: {exc}", entry=member) from exc
        return hasher.hexdigest()

    return digest


def _label(req: Requirement) -> str:
    return str(req)


def _parent(req: Requirement, default: str) -> str:
    return req.origin if isinstance(req, LineRequirement) else default


def resolve(requirements: list[Requirement], wheels: list[WheelFile], target: Interpreter,
            read_metadata: Callable[[WheelFile], bytes]) -> Resolution:
    """Check that ``requirements`` and their closure are covered by ``wheels`` for ``target``."""
    supported = set(target.tags())
    cache: dict[str, bytes] = {}

    def metadata(wheel: WheelFile) -> bytes:
        if wheel.filename not in cache:
            cache[wheel.filename] = read_metadata(wheel)
        return cache[wheel.filename]

    by_name: dict[str, list[WheelFile]] = {}
    for wheel in wheels:
        by_name.setdefault(wheel.name, []).append(wheel)
    env = dict(target.markers)
    resolution = Resolution()
    extras_done: dict[str, set[str]] = {}
    queue: list[tuple[Requirement, str, frozenset[str]]] = [
        (r, _parent(r, "requirements"), frozenset({""})) for r in requirements]
    while queue:
        req, parent, parent_extras = queue.pop(0)
        if req.marker is not None and not _marker_applies(req.marker, env, parent_extras):
            continue
        name = canonicalize_name(req.name)
        resolution.required_by.setdefault(name, []).append(parent)
        chosen = resolution.chosen.get(name)
        if chosen is None:
            chosen = _choose(req, parent, by_name.get(name, []), supported, target, metadata)
            resolution.chosen[name] = chosen
        elif not req.specifier.contains(chosen.version, prereleases=True):
            raise RunnerError(PackageErrorCode.WHEELS_MISSING,
                              f"{parent} needs {_label(req)} but {chosen.filename} was chosen for "
                              f"{', '.join(resolution.required_by[name][:-1])}; bundle wheels that satisfy both",
                              requirement=_label(req), required_by=parent)
        wanted = {""} | {canonicalize_name(e) for e in req.extras}
        new_extras = wanted - extras_done.setdefault(name, set())
        if not new_extras:
            continue
        extras_done[name] |= new_extras
        for dep in requires_dist(metadata(chosen)):
            queue.append((dep, f"{chosen.name} {chosen.version}", frozenset(new_extras)))
    return resolution


def _marker_applies(marker: Marker, env: dict[str, str], extras: frozenset[str]) -> bool:
    return any(marker.evaluate({**env, "extra": extra}) for extra in extras)


def _choose(req: Requirement, parent: str, candidates: list[WheelFile], supported: set[Tag],
            target: Interpreter, metadata: Callable[[WheelFile], bytes]) -> WheelFile:
    location = req.location if isinstance(req, LineRequirement) else req.url
    if location:
        # "name @ file:///.../<wheel>" means exactly that wheel file.
        pinned = local_wheel_file(location)
        candidates = [w for w in candidates if w.filename == pinned]
    if not candidates and location:
        source = req.source if isinstance(req, LineRequirement) else "requirements.txt"
        raise RunnerError(PackageErrorCode.WHEELS_MISSING,
                          f"{parent}: {req.name} @ {location} {offline_hint(req.name, source)}",
                          requirement=f"{req.name} @ {location}", required_by=parent, problem="not_offline")
    if not candidates:
        raise RunnerError(PackageErrorCode.WHEELS_MISSING,
                          f"requirement {_label(req)} (from {parent}) has no wheel in wheels/; add it with "
                          "'pip download --only-binary=:all: -d wheels'",
                          requirement=_label(req), required_by=parent)
    fitting = [w for w in candidates if w.tags & supported]
    if not fitting:
        names = ", ".join(sorted(w.filename for w in candidates))
        raise RunnerError(PackageErrorCode.INCOMPATIBLE_PYTHON,
                          f"no wheel for {_label(req)} fits the interpreter {target.describe()}: {names}; "
                          f"bundle wheels built for Python {target.minor} on this platform",
                          requirement=_label(req), wheels=sorted(w.filename for w in candidates),
                          python=target.path, python_version=target.version_str)
    matching = [w for w in fitting if req.specifier.contains(w.version, prereleases=True)]
    if not matching:
        versions = ", ".join(sorted({str(w.version) for w in fitting}))
        raise RunnerError(PackageErrorCode.WHEELS_MISSING,
                          f"requirement {_label(req)} (from {parent}) is not satisfied by the bundled "
                          f"versions ({versions})", requirement=_label(req), required_by=parent,
                          available=sorted({str(w.version) for w in fitting}))
    refused = []
    for wheel in sorted(matching, key=lambda w: w.version, reverse=True):
        needs = requires_python(metadata(wheel))
        if needs is None or needs.contains(target.version_str, prereleases=True):
            return wheel
        refused.append(f"{wheel.filename} (Requires-Python {needs})")
    raise RunnerError(PackageErrorCode.INCOMPATIBLE_PYTHON,
                      f"no wheel for {_label(req)} supports the interpreter {target.describe()}: "
                      f"{', '.join(refused)}; bundle wheels for Python {target.minor} or target a newer Python",
                      requirement=_label(req), wheels=[w.filename for w in matching], python=target.path,
                      python_version=target.version_str)
