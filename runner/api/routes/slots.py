"""Frame slots for local clients: lease, release (``/fastpath/slots``); ``/execute?slot=`` uses one."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field

from runner.fastpath.slots import FrameSlots, Slot
from runner.supervision.dialects import posix_shm_dir

from ..context import AppContext, get_ctx
from ..schemas import PROBLEM_RESPONSES

router = APIRouter(tags=["fast path"], responses={401: PROBLEM_RESPONSES[401]})
_SLOTS_KEY = "frame_slots"
KEY_HEADER = "X-Slot-Key"
#: Leases run on the thread pool: clients leasing at once must not each make (and lose) a table.
_CREATE_LOCK = threading.Lock()


def frame_slots(request: Request, ctx: AppContext) -> FrameSlots:
    """The app's slot table (made on first use, sized by the settings)."""
    slots = getattr(request.app.state, _SLOTS_KEY, None)
    if slots is not None:
        return slots
    with _CREATE_LOCK:
        slots = getattr(request.app.state, _SLOTS_KEY, None)
        if slots is None:
            settings = ctx.settings
            slots = FrameSlots(posix_shm_dir(), settings.frame_slots_max, settings.frame_slot_lease_s,
                               max_bytes=settings.max_image_bytes)
            setattr(request.app.state, _SLOTS_KEY, slots)
    assert isinstance(slots, FrameSlots)
    return slots


def close_frame_slots(app: Any) -> None:
    """Free every leased slot (daemon shutdown): their files leave the shared-memory folder."""
    slots = getattr(app.state, _SLOTS_KEY, None)
    if slots is not None:
        slots.close()


class SlotRequest(BaseModel):
    """The frame shape a slot holds, and optionally the client's pid (its slots go when it exits)."""

    shape: list[int] = Field(min_length=2, max_length=3, description="[H, W] or [H, W, 3], uint8")
    client_pid: int | None = Field(default=None, gt=0)


class SlotLease(BaseModel):
    """A leased slot: map ``path`` (``shape`` uint8, row-major), write frames, name ``slot_id`` with ``key``."""

    slot_id: str
    key: str
    path: str
    shape: list[int]
    lease_s: float


def _lease(slot: Slot, lease_s: float) -> SlotLease:
    return SlotLease(slot_id=slot.slot_id, key=slot.key, path=str(slot.path), shape=list(slot.shape), lease_s=lease_s)


@router.post("/fastpath/slots", response_model=SlotLease, status_code=201,
             summary="Lease a frame slot (shared memory this client writes frames into)",
             responses={403: {"description": "forbidden"},
                        422: PROBLEM_RESPONSES[422], 503: {"description": "all slots leased (2052)"}})
def lease_slot(body: SlotRequest, request: Request, ctx: AppContext = Depends(get_ctx)) -> Any:
    slots = frame_slots(request, ctx)
    return _lease(slots.lease(tuple(body.shape), body.client_pid), slots.lease_s)


@router.delete("/fastpath/slots/{slot_id}", status_code=204, summary="Release a frame slot",
               responses={403: {"description": "leased to another caller (2051)"},
                          404: PROBLEM_RESPONSES[404]})
def release_slot(slot_id: str, request: Request, ctx: AppContext = Depends(get_ctx),
                 x_slot_key: str | None = Header(default=None)) -> None:
    frame_slots(request, ctx).release(slot_id, x_slot_key)
