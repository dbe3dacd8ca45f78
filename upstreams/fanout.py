"""Fan-out: run a request's upstream calls concurrently, in dependency order, under one deadline.

    outcome = await fan_out([
        Call(name="product", upstream="catalog", run=get_product),
        Call(name="stock", upstream="inventory", run=get_stock, needs=("product",), required=False),
        Call(name="reviews", upstream="reviews", run=get_reviews, required=False),
    ], deadline=5.0)

Rules:
- A call starts as soon as every call it `needs` has succeeded; it receives their results. Independent calls run
  at the same time, so the whole takes about as long as the slowest chain, not the sum.
- A *required* call's failure cancels every other call (and waits for them: no orphaned task) and is raised.
- An *optional* call's failure is collected in `Outcome.failures`; calls that need it are not attempted and are
  recorded as `DependencyFailed` (raised if they were required).
- When the deadline passes, pending optional calls fail with `DeadlineExceeded`; a pending required call raises it.
- If the caller is cancelled (the client went away), every call is cancelled before the cancellation propagates.
- With `limit`, at most that many calls run at once; the others start, in order, as running ones finish.
Only `UpstreamError`s are treated as call failures; any other exception is a bug and propagates after cleanup.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import context
from .errors import DeadlineExceeded, DependencyFailed, UpstreamError

__all__ = ["Call", "Outcome", "fan_out", "validate_calls"]


@dataclass(frozen=True, kw_only=True)
class Call:
    """One unit of work: `run(results_of_needs)` returns a value or raises an `UpstreamError`."""

    name: str
    upstream: str
    run: Callable[[Mapping[str, Any]], Awaitable[Any]]
    needs: tuple[str, ...] = ()
    required: bool = True


@dataclass
class Outcome:
    results: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, UpstreamError] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)  # seconds, per call that started


def validate_calls(calls: Sequence[Call]) -> None:
    """Raise ValueError for duplicate names, unknown dependencies or a dependency cycle."""
    names = [call.name for call in calls]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate call names in {names}")
    needs = {call.name: call.needs for call in calls}
    for call in calls:
        unknown = [dep for dep in call.needs if dep not in needs]
        if unknown:
            raise ValueError(f"call {call.name!r} needs unknown calls {unknown}")
    resolved: set[str] = set()
    while len(resolved) < len(needs):
        ready = {name for name, deps in needs.items() if name not in resolved and set(deps) <= resolved}
        if not ready:
            raise ValueError(f"dependency cycle among {sorted(set(needs) - resolved)}")
        resolved |= ready


async def fan_out(calls: Sequence[Call], *, deadline: float, limit: int | None = None) -> Outcome:
    """Run `calls` as described in the module docstring; `deadline` is in seconds from now; `limit`: at most this
    many calls in flight at once (None: no limit)."""
    validate_calls(calls)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    return await _FanOut(calls, deadline, limit).run()


class _FanOut:
    def __init__(self, calls: Sequence[Call], deadline: float, limit: int | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.limit = limit
        self.expired = False  # the deadline passed: nothing more starts
        self.ends_at = self.loop.time() + deadline
        self.waiting = list(calls)
        self.running: dict[asyncio.Task[Any], Call] = {}
        self.started: dict[str, float] = {}
        self.outcome = Outcome()
        # Finished tasks, in order, and the future `run` sleeps on until there is one. (asyncio.wait would
        # register a callback on every pending task for every completion: quadratic in the number of calls.)
        self.done: deque[asyncio.Task[Any]] = deque()
        self.wakeup: asyncio.Future[None] | None = None

    async def run(self) -> Outcome:
        # Every call's task copies this context: upstream attempts size themselves to what is left.
        token = context.deadline.set(time.monotonic() + (self.ends_at - self.loop.time()))
        deadline = asyncio.timeout_at(self.ends_at)
        try:
            self._start_ready()
            try:
                async with deadline:
                    while self.running:
                        await self._next_done()
                        while self.done:
                            self._finish(self.done.popleft())
                        self._start_ready()
            except TimeoutError:
                if not deadline.expired():
                    raise  # a call's own TimeoutError (a bug): not the deadline
                await self._expire_pending()
                self.expired = True
                while self.waiting:  # calls that needed the expired ones, or waited for a slot, are not attempted
                    self._start_ready()
            return self.outcome
        finally:
            context.deadline.reset(token)
            await self._cancel_running()

    async def _next_done(self) -> None:
        if not self.done:
            self.wakeup = self.loop.create_future()
            await self.wakeup

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task in self.running:
            self.done.append(task)
            if self.wakeup is not None and not self.wakeup.done():
                self.wakeup.set_result(None)

    def _start_ready(self) -> None:
        for call in list(self.waiting):
            failed = next((dep for dep in call.needs if dep in self.outcome.failures), None)
            if failed is not None:
                self.waiting.remove(call)
                self._fail(call, DependencyFailed(call.upstream, failed))
            elif self.expired and all(dep in self.outcome.results for dep in call.needs):
                self.waiting.remove(call)
                self._fail(call, DeadlineExceeded(call.upstream))
            elif all(dep in self.outcome.results for dep in call.needs):
                if self.limit is not None and len(self.running) >= self.limit:
                    continue  # a slot frees when a running call finishes: _start_ready runs again then
                self.waiting.remove(call)
                inputs = {dep: self.outcome.results[dep] for dep in call.needs}
                self.started[call.name] = time.perf_counter()
                task = asyncio.ensure_future(call.run(inputs))
                self.running[task] = call
                task.add_done_callback(self._task_done)

    def _finish(self, task: asyncio.Task[Any]) -> None:
        call = self.running.pop(task, None)
        if call is None:
            return  # already given up (expired or cancelled)
        self.outcome.durations[call.name] = time.perf_counter() - self.started[call.name]
        try:
            self.outcome.results[call.name] = task.result()
        except UpstreamError as exc:
            self._fail(call, exc)

    def _fail(self, call: Call, exc: UpstreamError) -> None:
        if call.required:
            raise exc
        self.outcome.failures[call.name] = exc

    async def _expire_pending(self) -> None:
        """The deadline passed: required calls still running fail the whole; optional ones are given up."""
        expired = list(self.running.values())
        await self._cancel_running()
        for call in sorted(expired, key=lambda c: not c.required):  # a required one raises first
            self.outcome.durations[call.name] = time.perf_counter() - self.started[call.name]
            self._fail(call, DeadlineExceeded(call.upstream))

    async def _cancel_running(self) -> None:
        tasks = list(self.running)
        self.running.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            # Wait for them to finish unwinding so no task outlives the request; their errors are moot now.
            await asyncio.wait(tasks)
            for task in tasks:
                if not task.cancelled():
                    task.exception()  # mark retrieved: no "exception was never retrieved" warning
