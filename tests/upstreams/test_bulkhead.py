"""Bulkhead: at most max_concurrency slots, a bounded wait for the next one, then UpstreamSaturated.

Timeouts are tiny (50 ms) and the tests assert what was raised, never how long it took; an outer guard turns a wait
that ignores its budget into a failure instead of a hang.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from upstreams.bulkhead import Bulkhead
from upstreams.config import BulkheadPolicy
from upstreams.errors import UpstreamSaturated

NAME = "inventory"
TINY = 0.05
GUARD = 2.0  # far above every budget here: only a budget that is ignored reaches it


async def test_grants_up_to_max_concurrency_slots_at_once() -> None:
    bulkhead = Bulkhead(NAME, BulkheadPolicy(max_concurrency=3, queue_timeout=TINY))

    async with AsyncExitStack() as stack:
        for expected in (1, 2, 3):
            await stack.enter_async_context(bulkhead.slot())
            assert bulkhead.in_use == expected

    assert bulkhead.in_use == 0


async def test_call_beyond_capacity_raises_saturated_after_queue_timeout() -> None:
    bulkhead = Bulkhead(NAME, BulkheadPolicy(max_concurrency=2, queue_timeout=TINY))

    async with bulkhead.slot(), bulkhead.slot():
        with pytest.raises(UpstreamSaturated) as caught:
            async with asyncio.timeout(GUARD), bulkhead.slot():
                pytest.fail("entered a third slot")
        assert bulkhead.in_use == 2

    assert caught.value.upstream == NAME
    assert caught.value.code == "upstream_saturated"


async def test_released_slot_lets_waiter_in() -> None:
    bulkhead = Bulkhead(NAME, BulkheadPolicy(max_concurrency=1, queue_timeout=GUARD))
    entered = asyncio.Event()

    async def waiter() -> None:
        async with bulkhead.slot():
            entered.set()

    async with bulkhead.slot():
        task = asyncio.create_task(waiter())
        await asyncio.sleep(0.01)
        assert not entered.is_set()  # queued behind the holder
    await asyncio.wait_for(task, timeout=GUARD)

    assert entered.is_set()
    assert bulkhead.in_use == 0


async def test_in_use_counts_held_slots_and_drops_when_block_raises() -> None:
    bulkhead = Bulkhead(NAME, BulkheadPolicy(max_concurrency=5, queue_timeout=TINY))

    async def failing_call() -> None:
        async with bulkhead.slot():
            assert bulkhead.in_use == 2
            raise RuntimeError("the call failed")

    async with bulkhead.slot():
        assert bulkhead.in_use == 1
        with pytest.raises(RuntimeError, match="the call failed"):
            await failing_call()
        assert bulkhead.in_use == 1

    assert bulkhead.in_use == 0


async def test_saturated_caller_does_not_take_a_slot() -> None:
    bulkhead = Bulkhead(NAME, BulkheadPolicy(max_concurrency=1, queue_timeout=TINY))
    async with bulkhead.slot():
        with pytest.raises(UpstreamSaturated):
            async with bulkhead.slot():
                pass

    async with asyncio.timeout(GUARD), bulkhead.slot():  # the slot is free again at once
        assert bulkhead.in_use == 1


async def test_cancelled_waiter_does_not_take_a_slot() -> None:
    bulkhead = Bulkhead(NAME, BulkheadPolicy(max_concurrency=1, queue_timeout=GUARD))

    async def waiter() -> None:
        async with bulkhead.slot():
            pytest.fail("a cancelled waiter entered")

    async with bulkhead.slot():
        task = asyncio.create_task(waiter())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert bulkhead.in_use == 0

    async with asyncio.timeout(GUARD), bulkhead.slot():
        assert bulkhead.in_use == 1


async def test_wait_shorter_than_queue_timeout_is_honoured() -> None:
    bulkhead = Bulkhead(NAME, BulkheadPolicy(max_concurrency=1, queue_timeout=60.0))

    async with bulkhead.slot():
        with pytest.raises(UpstreamSaturated):
            async with asyncio.timeout(GUARD), bulkhead.slot(wait=TINY):
                pass


async def test_wait_longer_than_queue_timeout_is_capped_by_it() -> None:
    bulkhead = Bulkhead(NAME, BulkheadPolicy(max_concurrency=1, queue_timeout=TINY))

    async with bulkhead.slot():
        with pytest.raises(UpstreamSaturated):
            async with asyncio.timeout(GUARD), bulkhead.slot(wait=60.0):
                pass


async def test_free_slot_is_granted_even_with_zero_wait() -> None:
    bulkhead = Bulkhead(NAME, BulkheadPolicy(max_concurrency=1, queue_timeout=TINY))

    async with bulkhead.slot(wait=0.0):
        assert bulkhead.in_use == 1
