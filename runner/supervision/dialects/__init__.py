"""The protocol dialects a worker can speak, as strategies, and how images and call data reach each.

Four kinds of worker exist in the field, one module each:

- ``procvision`` (procvision.py): this project's SDK, phase style; POSIX shared memory segments.
- ``procvision-execute-only`` (procvision_execute_only.py): this project's SDK serving an algorithm
  written in the execute-only style; the 0.3.x call shape, images in POSIX shared memory segments.
- ``public-phase`` (public_phase.py): the public SDK 0.0.6/0.0.7; images in files under PROC_SHM_DIR.
- ``public-execute-only`` (public_execute_only.py): the public SDK 0.3.x; current + guide image in files.

``base.DialectStrategy`` is what each implements (readiness, call building, request checks, smoke
plan, image transport, info after start); ``phases.py`` and ``execute_only.py`` hold the two call
shapes. ``handoff.ImageHandoff`` moves the images; ``environment`` builds a worker's environment.
The names below are this package's stable API (the smoke test, routing and the API import them).
"""

from __future__ import annotations

from typing import Any

from .base import Budget, Dialect, DialectStrategy, ImageTransport
from .capabilities import (
    BUSY_PONG_CAPABILITY,
    IMPORT_BEFORE_HELLO_CAPABILITY,
    SHM_POSIX_CAPABILITY,
    capabilities_of,
)
from .environment import ENV_ALLOW_LIST, posix_shm_dir, worker_environment
from .handoff import ImageHandoff
from .lookup import EXECUTE_ONLY_VALUES, detect_dialect, known_strategy, strategy_for
from .requests import COLOR_SPACES, PHASES, CallRequest, ImageInput


def build_call_data(dialect: Dialect, request: CallRequest, handoff: ImageHandoff) -> dict[str, Any]:
    """The ``data`` of a ``call`` frame for ``request`` in ``dialect``; images go through ``handoff``.

    Raises RunnerError(INVALID_PARAMS) for an unknown phase, or for ``pre``/``info`` (or missing
    images) on execute-only workers. On error, images already put stay in ``handoff`` until
    ``release_all``.
    """
    return strategy_for(dialect).build_call(request, handoff)


__all__ = ["Dialect", "DialectStrategy", "ImageTransport", "Budget", "EXECUTE_ONLY_VALUES", "detect_dialect",
           "strategy_for", "known_strategy", "ImageInput", "CallRequest", "ImageHandoff", "build_call_data",
           "worker_environment", "ENV_ALLOW_LIST", "posix_shm_dir", "SHM_POSIX_CAPABILITY",
           "IMPORT_BEFORE_HELLO_CAPABILITY", "BUSY_PONG_CAPABILITY", "PHASES", "COLOR_SPACES",
           "capabilities_of"]
