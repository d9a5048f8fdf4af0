"""Upload arrays are reused by size, and the pool never holds more than its count and byte bounds."""

from __future__ import annotations

from runner.api.streaming.buffers import BufferPool


def test_a_returned_buffer_serves_the_next_upload_of_its_size() -> None:
    pool = BufferPool(keep=2, max_bytes=1000)
    first = pool.take(100)
    pool.give(first)
    assert pool.take(100) is first
    assert pool.take(100) is not first  # taken again: a fresh one
    assert (pool.reused, pool.allocated) == (1, 2)


def test_the_pool_is_bounded_by_count_and_bytes() -> None:
    pool = BufferPool(keep=2, max_bytes=1000)
    a, b, c = pool.take(400), pool.take(400), pool.take(400)
    for buf in (a, b, c):
        pool.give(buf)
    # Three of 400 bytes would exceed both bounds: the oldest went, the two newest stayed.
    kept = [pool.take(400), pool.take(400)]
    assert all(any(k is buf for buf in (b, c)) for k in kept) and kept[0] is not kept[1]
    assert pool.take(400) is not a and pool.allocated == 4
    big = pool.take(2000)
    pool.give(big)
    assert pool.take(2000) is not big  # larger than the whole pool: never kept
