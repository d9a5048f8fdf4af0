"""The dispatcher sends a call whose image already sits in one worker's segment to that worker when
it is free (any free worker otherwise, never waiting for it), and tells uploads where to reserve:
the session's worker, else free before busy, fewest outstanding reservations first."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import cast

from runner.supervision.dispatch import Dispatcher
from runner.supervision.states import State
from runner.supervision.worker import Worker


@dataclass
class _Slot:
    """What the dispatcher reads of a worker (index, state, reservations): a scheduling seam."""

    index: int
    state: State = State.RUNNING
    reserved_images: int = 0


def _dispatcher(count: int) -> tuple[Dispatcher, list[_Slot], threading.Condition]:
    slots = [_Slot(i) for i in range(count)]
    cond = threading.Condition()
    return Dispatcher(cond, cast(list[Worker], slots)), slots, cond


def _never() -> None:
    return None


def test_a_call_goes_to_the_worker_holding_its_image_when_that_one_is_free() -> None:
    dispatcher, slots, cond = _dispatcher(3)
    with cond:
        got = dispatcher.acquire(None, 1.0, False, _never, prefer=2)
    assert got is cast(Worker, slots[2])


def test_a_busy_reserving_worker_is_not_waited_for() -> None:
    dispatcher, slots, cond = _dispatcher(2)
    with cond:
        first = dispatcher.acquire(None, 1.0, False, _never, prefer=1)
        second = dispatcher.acquire(None, 1.0, False, _never, prefer=1)
    assert first is cast(Worker, slots[1]) and second is cast(Worker, slots[0])


def test_uploads_reserve_on_free_workers_with_the_fewest_reservations_first() -> None:
    dispatcher, slots, cond = _dispatcher(3)
    slots[0].reserved_images = 2
    slots[2].state = State.STARTING  # being restarted: no segment folder to reserve in
    with cond:
        busy = dispatcher.acquire(None, 1.0, False, _never, prefer=1)
        assert busy is cast(Worker, slots[1])
        assert dispatcher.placement_order(None) == [0, 1]  # free first, though it has reservations
        slots[0].reserved_images = 0
        dispatcher.release(cast(Worker, slots[1]), "s-1", end_session=False)
        slots[1].reserved_images = 1
        assert dispatcher.placement_order(None) == [0, 1]
        assert dispatcher.placement_order("s-1") == [1]  # the session's state lives in worker 1
