"""fan_out: concurrency, dependencies, required vs optional failures, the deadline, and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from upstreams import (
    Call,
    DeadlineExceeded,
    DependencyFailed,
    UpstreamConnectError,
    UpstreamTimeout,
    fan_out,
    validate_calls,
)


def call(name: str, run: Any, *, needs: tuple[str, ...] = (), required: bool = True) -> Call:
    return Call(name=name, upstream=f"up-{name}", run=run, needs=needs, required=required)


def value(result: Any) -> Any:
    async def run(needed: Mapping[str, Any]) -> Any:
        return result

    return run


def failing(exc: Exception) -> Any:
    async def run(needed: Mapping[str, Any]) -> Any:
        raise exc

    return run


class Tracker:
    """Records which calls were cancelled, and hangs until told otherwise."""

    def __init__(self) -> None:
        self.cancelled: list[str] = []

    def hanging(self, name: str) -> Any:
        async def run(needed: Mapping[str, Any]) -> Any:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled.append(name)
                raise

        return run


def other_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


async def test_independent_calls_run_at_the_same_time() -> None:
    # Each call waits until all three have started: run one after another, they would never finish.
    started = 0
    all_started = asyncio.Event()

    async def run(needed: Mapping[str, Any]) -> int:
        nonlocal started
        started += 1
        if started == 3:
            all_started.set()
        await all_started.wait()
        return started

    outcome = await fan_out([call("a", run), call("b", run), call("c", run)], deadline=2)

    assert outcome.results == {"a": 3, "b": 3, "c": 3}
    assert outcome.failures == {}


async def test_dependent_call_receives_its_dependencys_result() -> None:
    async def needs_a(needed: Mapping[str, Any]) -> str:
        return f"b saw {needed['a']}"

    outcome = await fan_out([call("a", value("A")), call("b", needs_a, needs=("a",))], deadline=1)

    assert outcome.results == {"a": "A", "b": "b saw A"}


async def test_dependent_call_starts_as_soon_as_its_dependency_is_done_not_after_everything() -> None:
    # c only finishes once b has run; b needs a. If b waited for all first-wave calls (a and c), this would hang.
    b_ran = asyncio.Event()

    async def b(needed: Mapping[str, Any]) -> str:
        b_ran.set()
        return "B"

    async def c(needed: Mapping[str, Any]) -> str:
        await b_ran.wait()
        return "C"

    outcome = await fan_out([call("a", value("A")), call("b", b, needs=("a",)), call("c", c)], deadline=2)

    assert outcome.results == {"a": "A", "b": "B", "c": "C"}


async def test_required_failure_cancels_the_others_and_is_raised() -> None:
    tracker = Tracker()
    error = UpstreamConnectError("up-a")

    with pytest.raises(UpstreamConnectError) as raised:
        await fan_out(
            [
                call("a", failing(error)),
                call("b", tracker.hanging("b")),
                call("c", tracker.hanging("c"), required=False),
            ],
            deadline=5,
        )

    assert raised.value is error
    assert sorted(tracker.cancelled) == ["b", "c"]
    assert other_tasks() == set()


async def test_optional_failure_is_collected_and_its_dependents_are_not_attempted() -> None:
    attempted: list[str] = []

    async def dependent(needed: Mapping[str, Any]) -> None:
        attempted.append("c")

    error = UpstreamTimeout("up-b")
    outcome = await fan_out(
        [
            call("a", value(1)),
            call("b", failing(error), required=False),
            call("c", dependent, needs=("b",), required=False),
        ],
        deadline=1,
    )

    assert outcome.results == {"a": 1}
    assert outcome.failures["b"] is error
    assert isinstance(outcome.failures["c"], DependencyFailed)
    assert outcome.failures["c"].dependency == "b"
    assert attempted == []


async def test_required_call_needing_a_failed_optional_call_fails_the_whole() -> None:
    with pytest.raises(DependencyFailed):
        await fan_out(
            [call("a", failing(UpstreamTimeout("up-a")), required=False), call("b", value(2), needs=("a",))],
            deadline=1,
        )


async def test_deadline_gives_up_pending_optional_calls_and_keeps_the_rest() -> None:
    tracker = Tracker()

    outcome = await fan_out(
        [call("a", value("A")), call("slow", tracker.hanging("slow"), required=False)], deadline=0.05
    )

    assert outcome.results == {"a": "A"}
    assert isinstance(outcome.failures["slow"], DeadlineExceeded)
    assert outcome.failures["slow"].upstream == "up-slow"
    assert tracker.cancelled == ["slow"]
    assert other_tasks() == set()


async def test_deadline_with_a_pending_required_call_raises_deadline_exceeded() -> None:
    tracker = Tracker()

    with pytest.raises(DeadlineExceeded) as raised:
        await fan_out(
            [call("slow", tracker.hanging("slow")), call("opt", tracker.hanging("opt"), required=False)], deadline=0.05
        )

    assert raised.value.upstream == "up-slow"
    assert sorted(tracker.cancelled) == ["opt", "slow"]
    assert other_tasks() == set()


async def test_cancelling_the_caller_cancels_every_call() -> None:
    tracker = Tracker()
    started = asyncio.Event()

    async def first(needed: Mapping[str, Any]) -> None:
        started.set()
        await tracker.hanging("first")(needed)

    outer = asyncio.ensure_future(
        fan_out([call("first", first), call("second", tracker.hanging("second"))], deadline=60)
    )
    await started.wait()
    outer.cancel()

    with pytest.raises(asyncio.CancelledError):
        await outer
    assert sorted(tracker.cancelled) == ["first", "second"]
    assert other_tasks() == set()


async def test_a_bug_in_a_call_propagates_after_cancelling_the_others() -> None:
    tracker = Tracker()

    with pytest.raises(KeyError):
        await fan_out(
            [call("bug", failing(KeyError("x")), required=False), call("b", tracker.hanging("b"))], deadline=5
        )

    assert tracker.cancelled == ["b"]


@pytest.mark.parametrize(
    ("calls", "message"),
    [
        ([call("a", value(1)), call("a", value(2))], "duplicate"),
        ([call("a", value(1), needs=("nope",))], "unknown"),
        ([call("a", value(1), needs=("b",)), call("b", value(2), needs=("a",))], "cycle"),
    ],
)
def test_invalid_declarations_are_rejected(calls: list[Call], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_calls(calls)


async def test_limit_runs_at_most_that_many_calls_at_once_and_all_of_them_in_the_end() -> None:
    running, peak = 0, 0

    def counted(result: int) -> Any:
        async def run(needed: Mapping[str, Any]) -> Any:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.001 * (result % 3))
            running -= 1
            return result

        return run

    outcome = await fan_out([call(f"c{i}", counted(i), required=False) for i in range(12)], deadline=5, limit=3)

    assert peak == 3
    assert outcome.results == {f"c{i}": i for i in range(12)}


async def test_calls_still_waiting_for_a_slot_at_the_deadline_are_deadline_exceeded_not_started() -> None:
    started: list[str] = []

    def hanging(name: str) -> Any:
        async def run(needed: Mapping[str, Any]) -> Any:
            started.append(name)
            await asyncio.sleep(10)

        return run

    outcome = await fan_out([call(f"c{i}", hanging(f"c{i}"), required=False) for i in range(4)], deadline=0.05, limit=2)

    assert started == ["c0", "c1"]
    assert set(outcome.failures) == {"c0", "c1", "c2", "c3"}
    assert all(isinstance(error, DeadlineExceeded) for error in outcome.failures.values())


def test_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        asyncio.run(fan_out([], deadline=1, limit=0))
