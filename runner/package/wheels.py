"""Decide, from wheel file names and metadata only, whether a package's bundled wheels can install.

Before any venv exists: every requirement (``requirements.txt`` / ``requirements.sanitized.txt``, plus
the SDK the adapter comes from) and its dependency closure (``Requires-Dist`` of the chosen wheels,
markers evaluated for the target interpreter) must have a wheel in ``wheels/`` that fits the target
interpreter's tags and the version specifier.

* no wheel with the requirement's name, or none in the right version -> 2004 wheels_missing;
* a requirements line that cannot be honoured offline (``-r``/``-c``, ``-e``, a bare URL or path, a
  ``name @ URL`` whose wheel is not bundled) or cannot be parsed -> 2004 naming the file and line. (A
  broken requirements file is not a broken zip (2001) nor a manifest problem (2002): it is the list the
  wheels are checked against, so it shares their code; ``details.problem`` tells the cases apart.)
* wheels with that name exist but none fits the interpreter's tags, or every fitting one declares a
  ``Requires-Python`` that excludes the interpreter -> 2003 incompatible_python naming the wheels and the
  interpreter.
"""

from __future__ import annotations

import email.parser
import hashlib
import io
import re
import struct
import urllib.parse
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

from procvision_algorithm_sdk.requirement_lines import (
    RequirementLine,
    RequirementLineError,
    numbered_lines,
    parse_line,
)
from procvision_algorithm_sdk.zipsafety import ZipLimits, ZipProblem, check_end_record, read_end_record

from ..errors import PackageErrorCode, RunnerError
from .interpreters import Interpreter

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


class LineRequirement(Requirement):
    """A requirement from a requirements file, remembering where it was written (for messages)."""

    def __init__(self, text: str, source: str, line: int, location: str | None = None) -> None:
        super().__init__(text)
        self.source = source
        self.line = line
        #: The URL of a ``name @ file:...whl`` line (the requirement itself is kept by name only).
        self.location = location
        #: ``(algorithm, hex digest)`` pairs from ``--hash`` options; the chosen wheel must match one.
        self.hashes: tuple[tuple[str, str], ...] = ()

    @property
    def origin(self) -> str:
        return f"{self.source} line {self.line}"


def offline_hint(name: str, source: str) -> str:
    """What to do instead of a requirement that needs a network or a local checkout."""
    return (f"cannot be installed offline: bundle a wheel for {name} in wheels/ and name it by version "
            f"({name}==<version>) in {source}")


def _name_of_location(location: str) -> str:
    """Best guess at the distribution a URL or path points at (for the message only)."""
    if "#egg=" in location:
        return location.split("#egg=", 1)[1].split("&", 1)[0] or "it"
    base = location.rstrip("/").rsplit("/", 1)[-1].split("#", 1)[0].split("?", 1)[0]
    if "+" in location.split("://", 1)[0]:  # VCS URL: drop the "@revision"
        base = base.split("@", 1)[0]
    if base.endswith(".whl"):
        try:
            return str(parse_wheel_filename(base)[0])
        except InvalidWheelFilename:
            pass
    for suffix in (".tar.gz", ".zip", ".tar.bz2", ".git"):
        if base.endswith(suffix):
            base = base[: -len(suffix)].rsplit("-", 1)[0] if suffix != ".git" else base[: -len(suffix)]
    return base or "it"


def _looks_like_location(line: str) -> bool:
    return ("://" in line or line.startswith((".", "/", "~", "\\")) or (len(line) > 1 and line[1] == ":")
            or line.endswith((".whl", ".tar.gz", ".zip")))


def _line_error(where: str, message: str, line: str, number: int, source: str, problem: str,
                **details: object) -> RunnerError:
    return RunnerError(PackageErrorCode.WHEELS_MISSING, f"{where}: {message}", requirement=line, line=number,
                       file=source, problem=problem, **details)


def parse_requirements(text: str, source: str) -> list[Requirement]:
    """Requirement lines of a requirements file (each a ``LineRequirement``), 2004 naming the file and
    line for anything an offline install cannot honour (see ``procvision_algorithm_sdk.requirement_lines``
    for the option lines): ``-r``/``-c``, ``-e``, bare URLs and paths, ``name @ URL`` other than a
    ``file:`` URL of a wheel, index options such as ``--index-url``, malformed ``--hash`` values, and
    lines that are not PEP 508. ``--hash`` values are kept on the requirement and checked by
    ``check_hashes``.

    ``name @ file:///.../<wheel>`` (as ``pip freeze`` writes for local wheels) pins that wheel file:
    ``resolve`` accepts it only when a wheel of exactly that file name is bundled."""
    reqs: list[Requirement] = []
    for number, line in numbered_lines(text):
        where = f"{source} line {number}"
        if line.startswith(("-r", "--requirement", "-c", "--constraint")):
            raise _line_error(where, f"{line!r} refers to another file, which is not part of the package; list "
                              f"the requirements themselves (name==version) in {source}", line, number, source,
                              "not_offline")
        if line.startswith(("-e", "--editable")):
            location = re.sub(r"^(--editable|-e)[=\s]*", "", line)
            raise _line_error(where, f"editable requirement {line!r} "
                              f"{offline_hint(_name_of_location(location.strip()), source)}", line, number, source,
                              "not_offline")
        try:
            parsed = parse_line(number, line)
        except RequirementLineError as exc:
            raise _line_error(where, f"{line!r}: {exc.message}", line, number, source, exc.problem) from exc
        if parsed.is_option:
            continue  # an allowed option; the install is offline with --no-index anyway
        text_only = parsed.requirement
        if _looks_like_location(text_only) and "@" not in text_only.split("://", 1)[0]:
            kind = "URL" if "://" in text_only else "local path"
            raise _line_error(where, f"{kind} requirement {text_only!r} "
                              f"{offline_hint(_name_of_location(text_only), source)}", line, number, source,
                              "not_offline")
        reqs.append(_requirement(parsed, text_only, where, source))
    return reqs


def _requirement(parsed: RequirementLine, text: str, where: str, source: str) -> LineRequirement:
    try:
        req = LineRequirement(text, source, parsed.number)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _line_error(where, f"{text!r} is not a valid requirement ({reason}); write one PEP 508 "
                          "requirement per line, e.g. numpy==1.26.4", parsed.text, parsed.number, source,
                          "invalid_requirement", parse_error=str(exc)) from exc
    if req.url:
        wheel_file = _local_wheel_file(req.url)
        if wheel_file is None:
            raise _line_error(where, f"{req.name} @ {req.url} {offline_hint(req.name, source)}", parsed.text,
                              parsed.number, source, "not_offline")
        # Kept by name; resolve() holds it to exactly this bundled wheel file.
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        marker = f"; {req.marker}" if req.marker else ""
        req = LineRequirement(f"{req.name}{extras}{marker}", source, parsed.number, location=req.url)
    req.hashes = parsed.hashes
    return req


def _local_wheel_file(url: str) -> str | None:
    """The wheel file name a ``file:`` URL points at, or None for any other URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "file":
        return None
    filename = urllib.parse.unquote(parts.path).rstrip("/").rsplit("/", 1)[-1]
    try:
        parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    return filename


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
            with zf.open(member) as outer:
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
            with zf.open(member) as handle:
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
        pinned = _local_wheel_file(location)
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
