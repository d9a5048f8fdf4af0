"""ProcVision algorithm SDK: the API algorithm authors import.

The names exported here match the public ``procvision_algorithm_sdk`` so existing algorithms
import unchanged.
"""

from typing import TYPE_CHECKING, Any

from .base import BaseAlgorithm
from .diagnostics import Diagnostics
from .errors import ErrorCode, FatalError, GPUOutOfMemoryError, ProgramError, RecoverableError
from .logger import StructuredLogger
from .session import Session

if TYPE_CHECKING:
    from .shared_memory import read_image_from_shared_memory, write_image_array_to_shared_memory

__version__ = "1.0.0"

# The shared-memory helpers need numpy (~0.4 s to import): loaded on first use, so tools that only
# need the error codes or the CLI (``procvision-cli --help``, the runner's CLI) start fast.
_LAZY = {"read_image_from_shared_memory": "shared_memory", "write_image_array_to_shared_memory": "shared_memory"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

__all__ = [
    "BaseAlgorithm",
    "Session",
    "read_image_from_shared_memory",
    "write_image_array_to_shared_memory",
    "StructuredLogger",
    "Diagnostics",
    "RecoverableError",
    "FatalError",
    "GPUOutOfMemoryError",
    "ProgramError",
    "ErrorCode",
    "__version__",
]
