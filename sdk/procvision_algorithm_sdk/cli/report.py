"""The report every ``validate`` mode produces: named checks with PASS/FAIL/SKIP and a summary."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TextIO

PASS = "PASS"
FAIL = "FAIL"
SKIP = "SKIP"


@dataclass
class Check:
    """One named check and its outcome."""

    name: str
    result: str
    message: str = ""


@dataclass
class Report:
    """An ordered list of checks. ``ok`` is True when nothing failed."""

    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, result: str, message: str = "") -> Check:
        check = Check(name, result, message)
        self.checks.append(check)
        return check

    def pass_(self, name: str, message: str = "") -> Check:
        return self.add(name, PASS, message)

    def fail(self, name: str, message: str) -> Check:
        return self.add(name, FAIL, message)

    def skip(self, name: str, message: str) -> Check:
        return self.add(name, SKIP, message)

    def extend(self, other: Report) -> None:
        self.checks.extend(other.checks)

    @property
    def ok(self) -> bool:
        return not any(c.result == FAIL for c in self.checks)

    def failed(self, name: str) -> bool:
        """True if a check called ``name`` failed (later checks use this to skip)."""
        return any(c.name == name and c.result == FAIL for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        passed = sum(1 for c in self.checks if c.result == PASS)
        failed = sum(1 for c in self.checks if c.result == FAIL)
        return {
            "summary": {"status": PASS if self.ok else FAIL, "passed": passed, "failed": failed},
            "checks": [{"name": c.name, "result": c.result, "message": c.message} for c in self.checks],
        }

    def render(self, out: TextIO, as_json: bool = False) -> None:
        """Print the report as JSON or as an aligned table followed by a summary line."""
        data = self.to_dict()
        if as_json:
            out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            return
        width = max([len(c.name) for c in self.checks] + [5])
        for c in self.checks:
            lines = (c.message or "").splitlines() or [""]
            out.write(f"{c.result:<4}  {c.name:<{width}}  {lines[0]}\n")
            for extra in lines[1:]:
                out.write(f"{'':<4}  {'':<{width}}  {extra}\n")
        summary = data["summary"]
        out.write(f"\n{summary['status']}: {summary['passed']} passed, {summary['failed']} failed, "
                  f"{len(self.checks) - summary['passed'] - summary['failed']} skipped\n")
