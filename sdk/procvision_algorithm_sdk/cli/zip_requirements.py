"""``validate --zip``: the requirements file's lines and the ``--hash`` pins, by the runner's rules
(``procvision_algorithm_sdk.requirement_lines``). Needs ``packaging`` (imported inside functions)."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from typing import Any

from ..requirement_lines import RequirementLineError, numbered_lines, parse_line
from .report import Report


@dataclass
class Pinned:
    """A requirement with ``--hash`` values, and where it was written."""

    requirement: Any
    hashes: tuple[tuple[str, str], ...]
    line: int


def parse_requirements(text: str, source: str, report: Report) -> tuple[list[Any], list[Pinned]] | None:
    """Requirements and the hash-pinned ones among them; None (and a failed check) if a line is refused."""
    from packaging.requirements import InvalidRequirement, Requirement

    reqs = []
    pinned = []
    errors = []
    for number, line in numbered_lines(text):
        where = f"line {number}: {line!r}"
        if line.startswith(("-r", "--requirement", "-c", "--constraint", "-e", "--editable")):
            errors.append(f"{where}: other files and editable installs cannot be honoured offline; list plain "
                          "requirements (name==version)")
            continue
        try:
            parsed = parse_line(number, line)
        except RequirementLineError as exc:
            errors.append(f"{where}: {exc.message}")
            continue
        if parsed.is_option:
            continue
        try:
            req = Requirement(parsed.requirement)
        except InvalidRequirement as exc:
            errors.append(f"{where}: {exc}")
            continue
        if req.url:
            errors.append(f"{where}: URL requirements cannot be installed offline; bundle the wheel and write "
                          f"{req.name}==<version>")
            continue
        reqs.append(req)
        if parsed.hashes:
            pinned.append(Pinned(req, parsed.hashes, number))
    if errors:
        report.fail("requirements", f"{source}:\n" + "\n".join(errors))
        return None
    report.pass_("requirements", f"{source}: {', '.join(str(r) for r in reqs) or 'nothing'}")
    return reqs, pinned


def _digest(zf: zipfile.ZipFile, entry: str, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with zf.open(entry) as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def hash_problems(zf: zipfile.ZipFile, chosen: dict[str, Any], pinned: list[Pinned], source: str) -> list[str]:
    """A message for each hash-pinned requirement whose chosen wheel matches none of its hashes."""
    from packaging.utils import canonicalize_name

    problems = []
    for pin in pinned:
        wheel = chosen.get(canonicalize_name(pin.requirement.name))
        if wheel is None:
            continue
        actual = {algorithm: _digest(zf, wheel.entry, algorithm) for algorithm in sorted({a for a, _ in pin.hashes})}
        if not any(actual[a] == h for a, h in pin.hashes):
            found = ", ".join(f"{a}:{h}" for a, h in actual.items())
            problems.append(f"{source} line {pin.line}: {wheel.filename} does not match the hash pinned for "
                            f"{pin.requirement.name}; the bundled wheel is {found}")
    return problems
