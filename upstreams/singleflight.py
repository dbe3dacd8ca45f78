"""Request coalescing ("single flight"): identical concurrent calls share one in-flight upstream request.

The first caller for a key starts the work as a task; later callers for the same key wait for that task. A waiter
that is cancelled (its client went away) stops waiting without cancelling the task the others still wait for; only
when every waiter has gone is the task cancelled too, so nothing runs for nobody. An error reaches every waiter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

__all__ = ["SingleFlight"]


class _Flight:
    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.waiters = 0


class SingleFlight:
    """One per event loop (tasks belong to a loop)."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight] = {}

    def in_flight(self) -> int:
        return len(self._flights)

    async def run(self, key: Hashable, work: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        """`(result, shared)`: shared is True when this caller joined a request another caller started."""
        flight = self._flights.get(key)
        shared = flight is not None
        if flight is None:
            flight = self._flights[key] = _Flight(asyncio.ensure_future(work()))
            flight.task.add_done_callback(lambda task: self._finished(key, task))
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task), shared
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                # Every waiter is gone: stop the work, and let the next caller start afresh rather than join a
                # flight that is being cancelled.
                flight.task.cancel()
                if self._flights.get(key) is flight:
                    del self._flights[key]

    def _finished(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        if self._flights.get(key) is not None and self._flights[key].task is task:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved: waiters re-raise it; no "exception was never retrieved" warning
