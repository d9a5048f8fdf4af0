"""The thread pool execute calls block on (runner/api/call_threads.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from runner.api.call_threads import CallThreads
from tests.support.waiting import wait_until


def test_a_call_runs_on_a_call_thread_and_its_result_comes_back() -> None:
    threads = CallThreads()
    try:
        async def main() -> tuple[str, int]:
            return await threads.run(lambda n: (threading.current_thread().name, n * 2), 21)

        name, doubled = asyncio.run(main())
    finally:
        threads.close()
    assert name.startswith("pv-call") and name != threading.current_thread().name
    assert doubled == 42


def test_a_call_raising_raises_in_the_awaiting_request() -> None:
    threads = CallThreads()

    def fails() -> None:
        raise RuntimeError("worker said no")

    try:
        with pytest.raises(RuntimeError, match="worker said no"):
            asyncio.run(threads.run(fails))
    finally:
        threads.close()


def test_a_cancelled_request_leaves_its_call_to_finish_on_its_thread() -> None:
    # The handlers give an upload's memory back on the call's thread once the worker is done: a
    # request cancelled meanwhile must not cut that call short.
    threads = CallThreads()
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def call() -> None:
        started.set()
        release.wait(60)
        finished.set()

    async def main() -> None:
        task = asyncio.ensure_future(threads.run(call))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
        assert not finished.is_set()
        release.set()
        wait_until(finished.is_set, 30, "the cancelled request's call to finish on its thread")
    finally:
        release.set()
        threads.close()
