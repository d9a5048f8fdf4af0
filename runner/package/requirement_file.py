"""The package's requirements file, line by line: what an offline install can honour.

The line rules themselves (allowed option lines, ``--hash`` syntax, continuations) come from
``procvision_algorithm_sdk.requirement_lines``, shared with ``procvision-cli validate --zip``; this module
adds the runner's messages (2004 naming the file and line, ``details.problem`` telling the cases apart)
and turns each requirement into a ``LineRequirement`` that remembers where it was written and its
``--hash`` pins.
"""

from __future__ import annotations

import re
import urllib.parse

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from procvision_algorithm_sdk.requirement_lines import (
    RequirementLine,
    RequirementLineError,
    numbered_lines,
    parse_line,
)

from ..errors import PackageErrorCode, RunnerError


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
        wheel_file = local_wheel_file(req.url)
        if wheel_file is None:
            raise _line_error(where, f"{req.name} @ {req.url} {offline_hint(req.name, source)}", parsed.text,
                              parsed.number, source, "not_offline")
        # Kept by name; resolve() holds it to exactly this bundled wheel file.
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        marker = f"; {req.marker}" if req.marker else ""
        req = LineRequirement(f"{req.name}{extras}{marker}", source, parsed.number, location=req.url)
    req.hashes = parsed.hashes
    return req


def local_wheel_file(url: str) -> str | None:
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
