"""Bulkhead: a cap on one upstream's concurrent calls, so a slow upstream cannot tie up every connection and task.

A call that cannot get a slot within its wait budget fails fast with `UpstreamSaturated` instead of queueing without
bound. One bulkhead per upstream per event loop (a worker has one loop), so the cap is per worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .config import BulkheadPolicy
from .errors import UpstreamSaturated

__all__ = ["Bulkhead"]


class Bulkhead:
    def __init__(self, name: str, policy: BulkheadPolicy) -> None:
        self.name = name
        self.policy = policy
        self._slots = asyncio.Semaphore(policy.max_concurrency)
        self.in_use = 0

    @asynccontextmanager
    async def slot(self, *, wait: float | None = None) -> AsyncIterator[None]:
        """Hold a slot for the duration of the block; wait at most `wait` (default: the policy's queue_timeout)."""
        budget = self.policy.queue_timeout if wait is None else min(wait, self.policy.queue_timeout)
        if self._slots.locked():
            try:
                async with asyncio.timeout(budget):
                    await self._slots.acquire()
            except TimeoutError:
                raise UpstreamSaturated(self.name) from None
        else:
            await self._slots.acquire()  # free: returns at once
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self._slots.release()
