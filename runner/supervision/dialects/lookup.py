"""From a hello (or a stored dialect name) to the strategy that speaks it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Dialect, DialectStrategy
from .capabilities import capabilities_of
from .procvision import ProcVisionDialect
from .procvision_execute_only import ProcVisionExecuteOnlyDialect
from .public_execute_only import PublicExecuteOnlyDialect
from .public_phase import PublicPhaseDialect

_STRATEGIES: dict[Dialect, DialectStrategy] = {
    strategy.dialect: strategy for strategy in (ProcVisionDialect(), ProcVisionExecuteOnlyDialect(),
                                                PublicPhaseDialect(), PublicExecuteOnlyDialect())}

#: Dialect values (as stored in the registry) whose workers take execute-only calls.
EXECUTE_ONLY_VALUES = frozenset(d.value for d, s in _STRATEGIES.items() if s.execute_only)


def strategy_for(dialect: Dialect) -> DialectStrategy:
    """The strategy of ``dialect``."""
    return _STRATEGIES[dialect]


def detect_dialect(hello: Mapping[str, Any]) -> Dialect:
    """Tell the dialect from a worker's hello frame.

    ``execute`` among the capabilities marks the execute-only call shape and any ``pv:`` capability
    our SDK: both -> our SDK serving an execute-only algorithm; ``execute`` alone -> the public 0.3.x
    era; ``pv:`` alone -> our SDK (phase style); neither -> the public phase protocol (0.0.6/0.0.7).
    """
    caps = capabilities_of(hello)
    ours = any(c.startswith("pv:") for c in caps)
    if "execute" in caps:
        return Dialect.PROCVISION_EXECUTE_ONLY if ours else Dialect.PUBLIC_EXECUTE_ONLY
    if ours:
        return Dialect.PROCVISION
    return Dialect.PUBLIC_PHASE


def known_strategy(live: Dialect | None, recorded: object) -> DialectStrategy | None:
    """The strategy of a version: its running workers' dialect, else the one its registry record
    names (a version installed without the smoke test has none); None when neither is known."""
    if live is not None:
        return strategy_for(live)
    try:
        return strategy_for(Dialect(str(recorded))) if recorded else None
    except ValueError:
        return None
