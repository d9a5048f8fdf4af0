"""Client library for programs on the station: ``LocalClient`` (frame slots, zero-copy execute)."""

from .local import FrameSlot, LocalClient, LocalClientError

__all__ = ["FrameSlot", "LocalClient", "LocalClientError"]
