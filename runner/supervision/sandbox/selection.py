"""Which sandbox a daemon uses: the first mechanism in the fallback order that works here.

Order: bubblewrap (namespaces, a private filesystem view, another user, no privileges), then none.
``sandbox: off`` skips the search; ``sandbox: require`` turns "none" into a refusal to start workers.
Landlock (kernel >= 5.13) would come between the two, for hosts without bubblewrap; it is not
implemented yet.
"""

from __future__ import annotations

from runner.config import Settings

from .base import Sandbox
from .bubblewrap import BubblewrapSandbox
from .none import NoSandbox


def fallback_order(settings: Settings) -> list[Sandbox]:
    """The mechanisms tried, best first."""
    return [BubblewrapSandbox(settings)]


def select_sandbox(settings: Settings) -> Sandbox:
    """The sandbox workers of this daemon run in. Cheap after the first call (probes are cached)."""
    if settings.sandbox == "off":
        return NoSandbox("sandbox is off (setting sandbox: off)")
    reasons: list[str] = []
    for candidate in fallback_order(settings):
        probe = candidate.probe()
        if probe.available:
            return candidate
        reasons.append(f"{candidate.name}: {probe.reason}")
    return NoSandbox("no sandbox mechanism works here: " + "; ".join(reasons), required=settings.sandbox == "require")
