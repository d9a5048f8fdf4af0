"""The threads an execute call blocks on while its worker runs.

A call's blocking part (dispatch, the image copy, waiting for the worker's answer) runs on a thread
so the event loop keeps serving. ``loop.run_in_executor`` on an executor of our own costs about a
third of the event loop's CPU that anyio's ``to_thread.run_sync`` (FastAPI's ``run_in_threadpool``)
spends per hop: no capacity limiter, cancel scope or idle-thread bookkeeping (measured 40 against
105-140 us per hop with 4 concurrent callers). Cancelling the awaiting request behaves as before:
the await ends, the thread finishes its call (the handlers give memory back on that thread).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

#: As many calls block at once as anyio's default thread limiter let them (more wait for a thread).
MAX_CALL_THREADS = 40


class CallThreads:
    """A thread pool for execute calls; threads start on demand and are reused."""

    def __init__(self, max_threads: int = MAX_CALL_THREADS) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="pv-call")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on one of the pool's threads; the awaiting task is free meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Let the threads end once their calls do (no new calls are taken)."""
        self._executor.shutdown(wait=False)
