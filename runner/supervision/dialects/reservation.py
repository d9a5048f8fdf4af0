"""Shared memory reserved for an image that is still arriving: the upload is written straight into it.

``POST /execute`` asks the version's pool for a reservation as soon as it knows the image's shape
(a ``.npy`` header, or ``X-Image-Shape``); the pool takes a pre-faulted segment from one worker's
``ImageHandoff``, the body's bytes are written into its pixels as they arrive, and the worker that
runs the call passes that segment on as it is (no copy). Another worker of the version (the
reserving one was busy) copies from it instead, as it would from any array. ``release`` gives a
segment no call used back; it is a no-op once a call took it over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from procvision_algorithm_sdk.shared_memory import ImageSegment

if TYPE_CHECKING:
    from .handoff import ImageHandoff


@dataclass(eq=False)
class ImageReservation:
    """A segment in the folder of worker ``worker_index``, reserved for one call's image."""

    segment: ImageSegment
    worker_index: int
    owner: ImageHandoff
    #: The segment's pixels (H x W x C uint8) for the receiver to write. They pin the mapping: if the
    #: worker stops meanwhile and its segments are freed, this memory stays mapped until dropped.
    pixels: np.ndarray

    def release(self) -> bool:
        """Give the segment back if no call took it over (idempotent). Returns whether it was still
        reserved: False once a call passed it on to its worker without a copy."""
        return self.owner.unreserve(self.segment)


__all__ = ["ImageReservation"]
