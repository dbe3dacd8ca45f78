"""upstreams.observe: what each upstream call did, as the observers (metrics, tracing) and the request's summary (the
access log) see it: outcome, cache result, retries, errors, cancellations, coalesced calls, and the requests it sent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from upstreams import (
    CallRecord,
    Observer,
    RetryPolicy,
    UpstreamClient,
    UpstreamConfig,
    UpstreamStatusError,
    add_observer,
    remove_observer,
    request_calls,
)


class Recorder(Observer):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[tuple[CallRecord, Any]] = []
        self.retries: list[str] = []
        self.sent: list[tuple[dict[str, str], Any]] = []

    def call_started(self, upstream: str) -> Any:
        self.started.append(upstream)
        return f"state-{len(self.started)}"

    def call_ended(self, record: CallRecord, started: Any) -> None:
        self.ended.append((record, started))

    def retried(self, upstream: str) -> None:
        self.retries.append(upstream)

    def outgoing(self, headers: dict[str, str], started: Any) -> None:
        headers["X-Observed"] = started
        self.sent.append((dict(headers), started))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    observer = Recorder()
    add_observer(observer)
    yield observer
    remove_observer(observer)


def client_for(handler: Any, **config: Any) -> UpstreamClient:
    base = {"name": "catalog", "base_url": "http://catalog.test", "timeout": 1.0, "connect_timeout": 0.5}
    return UpstreamClient(UpstreamConfig(**{**base, **config}), transport=httpx.MockTransport(handler))


async def test_a_call_is_started_ended_and_its_requests_carry_what_the_observer_adds(recorder: Recorder) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 7})

    client = client_for(handler)
    await client.fetch_json("products/7")
    await client.aclose()

    [(record, state)] = recorder.ended
    assert (record.upstream, record.outcome, record.cache, record.retries, record.error) == (
        "catalog",
        "miss",
        "miss",
        0,
        None,
    )
    assert record.seconds > 0
    assert state == "state-1"  # what call_started returned comes back
    assert seen[0].headers["X-Observed"] == "state-1"  # and is handed to outgoing for each request


async def test_retries_are_counted_and_a_successful_retried_call_is_retried(recorder: Recorder) -> None:
    answers = iter([httpx.Response(503), httpx.Response(503), httpx.Response(200, json={})])
    client = client_for(lambda request: next(answers), retry=RetryPolicy(retries=2, backoff=0.001))

    await client.fetch_json("x")
    await client.aclose()

    [(record, _)] = recorder.ended
    assert (record.outcome, record.cache, record.retries) == ("retried", "miss", 2)
    assert recorder.retries == ["catalog", "catalog"]
    assert [state for _, state in recorder.sent] == ["state-1"] * 3  # every attempt belongs to the one call


async def test_a_failed_call_ends_with_its_error_code(recorder: Recorder) -> None:
    client = client_for(lambda request: httpx.Response(500), retry=RetryPolicy(retries=0))

    with pytest.raises(UpstreamStatusError):
        await client.fetch_json("x")
    await client.aclose()

    [(record, _)] = recorder.ended
    assert (record.outcome, record.error, record.cache) == ("upstream_status", "upstream_status", "miss")


async def test_a_cancelled_call_ends_as_cancelled(recorder: Recorder) -> None:
    arrived = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        arrived.set()
        await asyncio.sleep(10)
        return httpx.Response(200, json={})

    client = client_for(handler)
    task = asyncio.ensure_future(client.fetch_json("x"))
    await arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.aclose()

    [(record, _)] = recorder.ended
    assert (record.outcome, record.error) == ("cancelled", "cancelled")


async def test_coalesced_calls_each_end_and_only_the_first_sends(recorder: Recorder) -> None:
    release = asyncio.Event()
    requests = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        await release.wait()
        return httpx.Response(200, json={})

    client = client_for(handler)
    first = asyncio.ensure_future(client.fetch_json("x"))
    second = asyncio.ensure_future(client.fetch_json("x"))
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(first, second)
    await client.aclose()

    assert requests == 1
    assert sorted(record.outcome for record, _ in recorder.ended) == ["miss", "shared"]
    assert [state for _, state in recorder.sent] == ["state-1"]  # the request went out as the first call's


async def test_the_requests_calls_are_collected_for_its_summary_with_no_observer() -> None:
    client = client_for(lambda request: httpx.Response(200, json={}))
    calls: list[CallRecord] = []
    token = request_calls.set(calls)
    try:
        await client.fetch_json("a")
        await client.fetch_json("b")
    finally:
        request_calls.reset(token)
    await client.fetch_json("c")  # outside a request: collected nowhere
    await client.aclose()

    assert [(record.upstream, record.outcome) for record in calls] == [("catalog", "miss"), ("catalog", "miss")]
