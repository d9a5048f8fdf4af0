"""What a ``VersionPool`` shows of its workers: the version-wide view (dialect, hello, info, latest
errors) folded from the per-worker ones, and the JSON status the API and CLI render."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from .launch import memory_limit_of
from .sandbox import protections_for

if TYPE_CHECKING:
    from .pool import VersionPool

T = TypeVar("T")
#: Per-worker counters summed into the version's.
COUNTERS = ("calls", "errors", "timeouts", "restarts", "crashes")


def first_set(values: Iterable[T | None]) -> T | None:
    """The first worker's value that is set (workers of one version agree on dialect, hello, info)."""
    return next((v for v in values if v is not None), None)


def latest_error(errors: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The most recent of the workers' errors (by their ``at`` time), or None."""
    present = [e for e in errors if e]
    return max(present, key=lambda e: e.get("at", 0)) if present else None


def pool_status(pool: VersionPool) -> dict[str, Any]:
    """JSON-able status of ``pool`` for the API and CLI."""
    hello = pool.hello or {}
    spec = pool.spec
    boxed = protections_for(pool.settings, spec.name, spec.version, spec.package_dir, spec.python)
    counters = {key: sum(w.counters[key] for w in pool.workers) for key in COUNTERS}
    dialect = pool.dialect
    return {
        "name": spec.name, "version": spec.version, "state": pool.state.value,
        "dialect": dialect.value if dialect else None,
        "hello": {"sdk_version": hello.get("sdk_version"), "capabilities": list(hello.get("capabilities") or [])},
        # Each worker's own last failure (exit code, stderr tail): the console shows it per worker.
        "workers": [{**w.status(), "sandbox": boxed.summary(), "last_error": w.last_error} for w in pool.workers],
        "sandbox": boxed.to_dict(),
        "queue_depth": pool.queue_depth(), "in_flight": pool.in_flight(),
        "last_error": pool.last_error, "info_error": pool.info_error, "counters": counters,
        "memory_limit": pool.launcher.status(memory_limit_of(spec, pool.settings)),
    }
