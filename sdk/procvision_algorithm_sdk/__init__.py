"""ProcVision algorithm SDK: the API algorithm authors import.

The names exported here match the public ``procvision_algorithm_sdk`` so existing algorithms
import unchanged.
"""

from .base import BaseAlgorithm
from .diagnostics import Diagnostics
from .errors import ErrorCode, FatalError, GPUOutOfMemoryError, ProgramError, RecoverableError
from .logger import StructuredLogger
from .session import Session
from .shared_memory import read_image_from_shared_memory, write_image_array_to_shared_memory

__version__ = "1.0.0"

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
