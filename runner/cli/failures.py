"""What a CLI command can fail with on the way to the daemon (kept apart from the HTTP client so
``main`` can catch them without loading ``http.client``, which ``--version`` and ``--help`` never need)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """The API answered with a problem document (or something unexpected)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code = str(problem.get("code") or "")
        self.name = str(problem.get("name") or "")
        self.detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        super().__init__(f"[{self.code} {self.name}] {self.detail}")


class Unreachable(Exception):
    """The daemon could not be reached or did not answer in time."""
