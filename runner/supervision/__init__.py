"""Worker supervision: processes, handshake, heartbeat, deadlines, restarts, images, dialects.

The routing layer uses ``Supervisor`` / ``VersionPool`` and the value types below; the install smoke
test uses ``dialects``.
"""

from .dialects import CallRequest, Dialect, ImageHandoff, ImageInput, build_call_data, detect_dialect
from .pool import VersionPool
from .spec import CallOutcome, WorkerSpec
from .states import State, SupervisorEvent, VersionState, WorkerState
from .supervisor import Supervisor

__all__ = ["CallOutcome", "CallRequest", "Dialect", "ImageHandoff", "ImageInput", "State", "Supervisor",
           "SupervisorEvent", "VersionPool", "VersionState", "WorkerSpec", "WorkerState", "build_call_data",
           "detect_dialect"]
