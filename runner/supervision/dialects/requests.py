"""What the runner asks of a worker, independent of the worker's dialect, and the checks every
dialect applies to it before anything reaches the worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from procvision_algorithm_sdk.errors import ErrorCode
from runner.errors import RunnerError

from .reservation import ImageReservation

PHASES = ("info", "pre", "execute")
COLOR_SPACES = ("RGB", "BGR")


@dataclass
class ImageInput:
    """One image for a call: a decoded array (H x W or H x W x C, uint8) or encoded bytes (PNG/JPEG)."""

    array: np.ndarray | None = None
    encoded: bytes | None = None
    color_space: str = "RGB"
    camera_id: str = ""
    timestamp_ms: int | None = None
    #: Set when ``array`` is the pixels of a segment reserved for this call (written as the upload
    #: arrived): the reserving worker passes that segment on instead of copying the array.
    reservation: ImageReservation | None = None


@dataclass
class CallRequest:
    """What the runner asks a worker to do, independent of the worker's dialect."""

    phase: str  # "info" | "pre" | "execute"
    step_index: int = 1
    pid: str = ""
    session_id: str | None = None
    session_context: dict[str, Any] = field(default_factory=dict)
    user_params: dict[str, Any] = field(default_factory=dict)
    image: ImageInput | None = None
    guide_image: ImageInput | None = None
    step_desc: str = ""
    guide_info: list[Any] = field(default_factory=list)
    end_session: bool = False


def invalid(message: str, **details: Any) -> RunnerError:
    """The INVALID_PARAMS error of a request a worker cannot take."""
    return RunnerError(ErrorCode.INVALID_PARAMS, message, **details)


def check_image(image: ImageInput) -> None:
    """Refuse an image no dialect can pass on (RunnerError naming what to fix)."""
    if (image.array is None) == (image.encoded is None):
        raise invalid("an image needs exactly one of 'array' (decoded pixels) or 'encoded' (PNG/JPEG bytes)")
    if image.color_space not in COLOR_SPACES:
        raise RunnerError(ErrorCode.UNSUPPORTED_COLOR_SPACE,
                          f"color space {image.color_space!r} is not supported; use one of {', '.join(COLOR_SPACES)}")
    if image.array is not None:
        arr = image.array
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise invalid(f"image array has shape {arr.shape}; expected H x W or H x W x 1/3/4")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise invalid("image array is empty")


def check_phase(request: CallRequest) -> None:
    """Refuse a phase no dialect knows."""
    if request.phase not in PHASES:
        raise invalid(f"unknown phase {request.phase!r}; use one of {', '.join(PHASES)}", phase=request.phase)
