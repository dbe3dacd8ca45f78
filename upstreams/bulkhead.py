"""Bulkhead: a cap on one upstream's concurrent calls, so a slow upstream cannot tie up every connection and task.

A call that cannot get a slot within its wait budget fails fast with `UpstreamSaturated` instead of queueing without
bound. One bulkhead per upstream per event loop (a worker has one loop), so the cap is per worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from . import observe
from .config import BulkheadPolicy
from .errors import UpstreamSaturated

__all__ = ["Bulkhead"]


class Bulkhead:
    def __init__(self, name: str, policy: BulkheadPolicy) -> None:
        self.name = name
        self.policy = policy
        self._slots = asyncio.Semaphore(policy.max_concurrency)
        self.in_use = 0

    async def acquire(self, *, wait: float | None = None) -> None:
        """Take a slot, waiting at most `wait` (default: the policy's queue_timeout), else `UpstreamSaturated`.
        Every successful `acquire()` must be paired with a `release()` (a try/finally: no context manager
        object on the hot path)."""
        if self._slots.locked():
            budget = self.policy.queue_timeout if wait is None else min(wait, self.policy.queue_timeout)
            try:
                async with asyncio.timeout(budget):
                    await self._slots.acquire()
            except TimeoutError:
                observe.bulkhead_rejected(self.name)
                raise UpstreamSaturated(self.name) from None
        else:
            await self._slots.acquire()  # free: returns at once
        self.in_use += 1
        observe.bulkhead_changed(self.name, self.in_use)

    def release(self) -> None:
        self.in_use -= 1
        self._slots.release()
        observe.bulkhead_changed(self.name, self.in_use)

    @asynccontextmanager
    async def slot(self, *, wait: float | None = None) -> AsyncIterator[None]:
        """`acquire()`/`release()` around a block."""
        await self.acquire(wait=wait)
        try:
            yield
        finally:
            self.release()
