"""The ``trust_mode`` setting -> a mode; ``auto`` is require once the store holds a key, else warn.

Resolved at every use, so trusting the first key turns auto into require without a restart."""

from __future__ import annotations

from ..store import TrustStore
from .base import TrustMode
from .off import OffMode
from .require import RequireMode
from .warn import WarnMode

MODES: dict[str, type[TrustMode]] = {m.name: m for m in (RequireMode, WarnMode, OffMode)}


def resolve_mode(setting: str, store: TrustStore) -> TrustMode:
    """The mode in force for ``setting`` (auto, require, warn or off) and the store's current content."""
    if setting == "auto":
        setting = RequireMode.name if store.has_any() else WarnMode.name
    return MODES[setting](store)
