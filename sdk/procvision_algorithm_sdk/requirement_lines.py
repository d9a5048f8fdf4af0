"""The lines of a package's ``requirements.txt`` that an offline install can honour, and those it cannot.

Shared by the runner (which installs) and ``procvision-cli validate --zip`` (which checks on the author's
machine), so both accept and refuse the same lines. Pure string work: no ``packaging`` needed.

* Option lines: ``--no-index``, ``--find-links``/``-f``, ``--only-binary`` and ``--prefer-binary`` are
  harmless offline and ignored (the installer supplies its own). Every other option (``--index-url``,
  ``--extra-index-url``, ``--trusted-host``, ``--pre``, ``--require-hashes``, ...) asks for something
  the install would not do, so it is refused rather than silently dropped.
* ``--hash=<algorithm>:<hex>`` after a requirement pins the bundled wheel's digest; the install checks
  it. sha256, sha384 and sha512 are accepted, as by pip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Option lines that are ignored because an offline install from wheels/ already behaves that way.
IGNORED_OPTIONS = ("--no-index", "--find-links", "-f", "--only-binary", "--prefer-binary")
#: Hash algorithms accepted in ``--hash=`` (pip's strong hashes).
HASH_ALGORITHMS = ("sha256", "sha384", "sha512")
_HASH_TOKEN = re.compile(r"--hash(?:=|\s+)(\S*)")
_HEX = re.compile(r"[0-9a-fA-F]+")


class RequirementLineError(ValueError):
    """A requirements line that cannot be honoured. ``problem`` tells the cases apart:
    ``option_not_allowed`` or ``invalid_hash``."""

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.message = message
        self.problem = problem


@dataclass(frozen=True)
class RequirementLine:
    """One meaningful line: its 1-based number, the text without comment, and for a requirement
    the requirement text without ``--hash`` options plus the pinned hashes (``(algorithm, hex)``)."""

    number: int
    text: str
    requirement: str
    hashes: tuple[tuple[str, str], ...] = ()

    @property
    def is_option(self) -> bool:
        return self.text.startswith("-")


def numbered_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of the non-empty, non-comment lines, inline comments removed. A line
    ending in a backslash continues on the next one (as pip-compile writes ``--hash`` lists); the
    joined line carries the number of its first line."""
    lines = []
    pending: list[str] = []
    first = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            first = number
        if raw.endswith("\\"):
            pending.append(raw[:-1])
            continue
        joined = " ".join([*pending, raw])
        pending = []
        line = joined.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append((first, " ".join(line.split())))
    if pending:
        line = " ".join(pending).split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append((first, " ".join(line.split())))
    return lines


def option_name(line: str) -> str:
    """``--index-url`` of ``--index-url=https://...``; ``-f`` of ``-f dir`` and ``-fdir``."""
    if line.startswith("--"):
        return re.split(r"[=\s]", line, maxsplit=1)[0]
    return line[:2]


def check_option(line: str) -> None:
    """RequirementLineError unless the option line is one an offline install may ignore."""
    name = option_name(line)
    if name in IGNORED_OPTIONS:
        return
    raise RequirementLineError(
        f"option {name!r} cannot be honoured by an offline install from wheels/ (only "
        f"{', '.join(IGNORED_OPTIONS)} are allowed, and ignored); remove the line", "option_not_allowed")


def split_hashes(line: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The requirement text and the ``--hash`` values of a requirement line (RequirementLineError for a
    malformed hash)."""
    hashes = []
    for value in _HASH_TOKEN.findall(line):
        algorithm, _, digest = value.partition(":")
        # Like pip, only the form is checked here; a digest of the wrong length simply never matches.
        if algorithm.lower() not in HASH_ALGORITHMS or not _HEX.fullmatch(digest):
            raise RequirementLineError(
                f"--hash={value} is not a hash pip understands; write --hash=sha256:<64 hex digits> (or sha384, "
                "sha512)", "invalid_hash")
        hashes.append((algorithm.lower(), digest.lower()))
    return _HASH_TOKEN.sub("", line).strip(), tuple(hashes)


def parse_line(number: int, line: str) -> RequirementLine:
    """Classify one meaningful line (see the module docstring); RequirementLineError if refused.
    ``-r``/``-c``/``-e`` lines are left to the caller, which explains them in its own words."""
    if line.startswith("-") and not line.startswith(("-r", "--requirement", "-c", "--constraint", "-e",
                                                     "--editable")):
        check_option(line)
        return RequirementLine(number, line, "")
    if line.startswith("-"):
        return RequirementLine(number, line, "")
    requirement, hashes = split_hashes(line)
    return RequirementLine(number, line, requirement, hashes)
