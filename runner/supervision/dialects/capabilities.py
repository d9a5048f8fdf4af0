"""The capabilities a worker announces in its hello: read in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Our SDK's capability for real POSIX shared memory images.
SHM_POSIX_CAPABILITY = "pv:shm-posix:v1"
#: Capability of our SDK's adapter: hello comes only after the algorithm loaded.
IMPORT_BEFORE_HELLO_CAPABILITY = "pv:import-before-hello:v1"
#: Capability of our SDK's adapter: pongs arrive while a call runs.
BUSY_PONG_CAPABILITY = "pv:busy-pong:v1"


def capabilities_of(hello: Mapping[str, Any] | None) -> list[str]:
    """The capabilities listed in a hello frame (none when it lists none or is malformed)."""
    raw = (hello or {}).get("capabilities")
    return [str(c) for c in raw] if isinstance(raw, list) else []
