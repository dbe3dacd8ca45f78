"""SingleFlight: identical concurrent calls share one piece of work; cancellation and errors reach the right callers;
no task outlives the test."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from upstreams.singleflight import SingleFlight


class Work:
    """Work that counts its runs, blocks until released, and records whether it was cancelled."""

    def __init__(self, result: Any = "answer", error: Exception | None = None) -> None:
        self.result = result
        self.error = error
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def __call__(self) -> Any:
        self.runs += 1
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        if self.error is not None:
            raise self.error
        return self.result


def other_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


async def assert_no_task_left() -> None:
    for _ in range(5):  # a cancelled task needs a loop iteration or two to finish
        await asyncio.sleep(0)
    assert other_tasks() == set()


async def settle() -> None:
    """Let every started task reach its first await."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_concurrent_identical_keys_run_work_once_and_share_result() -> None:
    flights = SingleFlight()
    work = Work(result={"id": 1})

    callers = [asyncio.create_task(flights.run("item:1", work)) for _ in range(5)]
    await settle()
    assert flights.in_flight() == 1
    work.release.set()
    outcomes = await asyncio.gather(*callers)

    assert work.runs == 1
    assert [result for result, _ in outcomes] == [{"id": 1}] * 5
    assert sorted(shared for _, shared in outcomes) == [False, True, True, True, True]
    assert outcomes[0][1] is False  # the first caller started it; the others joined
    await assert_no_task_left()


async def test_different_keys_run_work_separately() -> None:
    flights = SingleFlight()
    first, second = Work(result="one"), Work(result="two")

    callers = [asyncio.create_task(flights.run("a", first)), asyncio.create_task(flights.run("b", second))]
    await settle()
    assert flights.in_flight() == 2
    first.release.set()
    second.release.set()

    assert await asyncio.gather(*callers) == [("one", False), ("two", False)]
    assert (first.runs, second.runs) == (1, 1)
    await assert_no_task_left()


async def test_error_reaches_every_waiter() -> None:
    flights = SingleFlight()
    boom = RuntimeError("upstream broke")
    work = Work(error=boom)

    callers = [asyncio.create_task(flights.run("k", work)) for _ in range(3)]
    await settle()
    work.release.set()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)

    assert outcomes == [boom, boom, boom]
    assert work.runs == 1
    assert flights.in_flight() == 0
    await assert_no_task_left()


async def test_cancelled_waiter_does_not_cancel_work_others_wait_for() -> None:
    flights = SingleFlight()
    work = Work()
    leaving = asyncio.create_task(flights.run("k", work))
    staying = asyncio.create_task(flights.run("k", work))
    await settle()

    leaving.cancel()
    await settle()
    assert leaving.cancelled()
    assert not work.cancelled.is_set()
    work.release.set()

    assert await staying == ("answer", True)
    assert work.runs == 1
    await assert_no_task_left()


async def test_starter_cancelled_does_not_cancel_work_joiners_wait_for() -> None:
    flights = SingleFlight()
    work = Work()
    starter = asyncio.create_task(flights.run("k", work))
    await settle()
    joiner = asyncio.create_task(flights.run("k", work))
    await settle()

    starter.cancel()
    await settle()
    work.release.set()

    assert await joiner == ("answer", True)
    assert not work.cancelled.is_set()
    await assert_no_task_left()


async def test_work_is_cancelled_when_last_waiter_is_cancelled() -> None:
    flights = SingleFlight()
    work = Work()
    callers = [asyncio.create_task(flights.run("k", work)) for _ in range(2)]
    await settle()

    callers[0].cancel()
    await settle()
    assert not work.cancelled.is_set()
    callers[1].cancel()
    await asyncio.wait_for(work.cancelled.wait(), timeout=1)

    assert all(caller.cancelled() for caller in callers)
    await assert_no_task_left()
    assert flights.in_flight() == 0


async def test_key_is_free_again_after_completion() -> None:
    flights = SingleFlight()
    first = Work(result="first")
    first.release.set()
    assert await flights.run("k", first) == ("first", False)
    assert flights.in_flight() == 0

    second = Work(result="second")
    second.release.set()

    assert await flights.run("k", second) == ("second", False)
    assert (first.runs, second.runs) == (1, 1)
    await assert_no_task_left()


async def test_key_is_free_again_after_failure() -> None:
    flights = SingleFlight()
    failing = Work(error=ValueError("bad"))
    failing.release.set()
    with pytest.raises(ValueError, match="bad"):
        await flights.run("k", failing)

    retry = Work(result="ok")
    retry.release.set()

    assert await flights.run("k", retry) == ("ok", False)
    await assert_no_task_left()


async def test_caller_arriving_as_last_waiter_leaves_gets_a_result_not_cancellation() -> None:
    flights = SingleFlight()
    first = Work()
    leaving = asyncio.create_task(flights.run("k", first))
    await settle()

    fresh = Work(result="fresh")
    leaving.cancel()  # the last (only) waiter goes away...
    arriving = asyncio.create_task(flights.run("k", fresh))  # ...as a new caller arrives
    await settle()
    first.release.set()
    fresh.release.set()
    done, _ = await asyncio.wait({arriving}, timeout=1)

    try:
        assert done == {arriving}
        assert not arriving.cancelled()
        assert arriving.result()[0] in {"answer", "fresh"}
    finally:
        if not arriving.done():
            arriving.cancel()
        await assert_no_task_left()
