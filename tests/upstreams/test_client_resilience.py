"""UpstreamClient's policies working together: retries, Retry-After, the deadline, breaker, bulkhead, coalescing,
caching and stale-if-error. The transport is an in-process script, so nothing here depends on timing luck."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import httpx
import pytest

from upstreams import (
    CircuitOpen,
    DeadlineExceeded,
    UpstreamClient,
    UpstreamInvalidJSON,
    UpstreamNotFound,
    UpstreamSaturated,
    UpstreamStatusError,
    UpstreamTimeout,
    context,
    parse_upstreams,
)


class Script:
    """A transport handler answering with queued responses (or raising queued exceptions); records requests."""

    def __init__(self, *answers: Any) -> None:
        self.answers: deque[Any] = deque(answers)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.popleft() if len(self.answers) > 1 else self.answers[0]
        if callable(answer):
            answer = await answer()
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(200, json={"v": 1} if body is None else body, headers=headers)


def client(script: Script, **settings: str) -> UpstreamClient:
    config = parse_upstreams({"up": {"URL": "http://up.test", "RETRY_BACKOFF": "0", **settings}})["up"]
    return UpstreamClient(config, transport=httpx.MockTransport(script))


def deadline_in(seconds: float) -> None:
    """Set the request deadline as fan_out would (the test's own task context is discarded afterwards)."""
    context.deadline.set(time.monotonic() + seconds)


# --- Retries -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [httpx.Response(503), httpx.Response(502), httpx.ConnectError("refused")])
async def test_retryable_failure_is_retried_until_it_succeeds(failure: Any) -> None:
    script = Script(failure, failure, ok())
    upstream = client(script, RETRIES="2")

    fetched = await upstream.fetch_json("x")
    await upstream.aclose()

    assert fetched.payload == {"v": 1}
    assert fetched.attempts == 3
    assert len(script.requests) == 3


async def test_retries_stop_after_the_configured_attempts() -> None:
    script = Script(httpx.Response(503))
    upstream = client(script, RETRIES="2")

    with pytest.raises(UpstreamStatusError):
        await upstream.fetch_json("x")
    await upstream.aclose()

    assert len(script.requests) == 3


@pytest.mark.parametrize("status", [400, 404, 500, 501])
async def test_non_retryable_status_is_not_retried(status: int) -> None:
    script = Script(httpx.Response(status, json={}))
    upstream = client(script, RETRIES="3")

    with pytest.raises(UpstreamStatusError):
        await upstream.fetch_json("x")
    await upstream.aclose()

    assert len(script.requests) == 1


async def test_retry_after_in_seconds_is_waited_for() -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "1"}), ok())
    upstream = client(script, RETRIES="1", RETRY_AFTER_MAX="2")
    loop = asyncio.get_running_loop()

    started = loop.time()
    await upstream.fetch_json("x")
    waited = loop.time() - started
    await upstream.aclose()

    assert len(script.requests) == 2
    assert waited >= 0.95  # it waited as asked (lower bound only: a slow machine only makes this larger)


async def test_retry_after_as_an_http_date_is_honoured() -> None:
    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() - 5))  # already passed: retry now
    script = Script(httpx.Response(503, headers={"Retry-After": soon}), ok())
    upstream = client(script, RETRIES="1")

    assert (await upstream.fetch_json("x")).attempts == 2
    await upstream.aclose()


async def test_retry_after_beyond_the_cap_gives_up_instead_of_waiting() -> None:
    script = Script(httpx.Response(503, headers={"Retry-After": "120"}), ok())
    upstream = client(script, RETRIES="3", RETRY_AFTER_MAX="5")

    with pytest.raises(UpstreamStatusError) as raised:
        await upstream.fetch_json("x")
    await upstream.aclose()

    assert raised.value.retry_after == 120
    assert len(script.requests) == 1


async def test_no_retry_starts_that_could_not_finish_before_the_deadline() -> None:
    script = Script(httpx.Response(503, headers={"Retry-After": "1"}), ok())
    upstream = client(script, RETRIES="3", RETRY_AFTER_MAX="5")
    deadline_in(0.5)

    with pytest.raises(UpstreamStatusError):
        await upstream.fetch_json("x")
    await upstream.aclose()

    assert len(script.requests) == 1


async def test_attempt_budget_is_cut_to_the_remaining_deadline() -> None:
    async def slow() -> httpx.Response:
        await asyncio.sleep(5)
        return ok()

    upstream = client(Script(slow), TIMEOUT="5", RETRIES="0")
    deadline_in(0.1)
    loop = asyncio.get_running_loop()

    started = loop.time()
    with pytest.raises(DeadlineExceeded):
        await upstream.fetch_json("x")
    await upstream.aclose()

    assert loop.time() - started < 2  # bounded by the 0.1 s deadline, not the 5 s timeout


async def test_own_timeout_applies_when_the_deadline_is_further() -> None:
    async def slow() -> httpx.Response:
        await asyncio.sleep(5)
        return ok()

    upstream = client(Script(slow), TIMEOUT="0.1", RETRIES="0")

    with pytest.raises(UpstreamTimeout) as raised:
        await upstream.fetch_json("x")
    await upstream.aclose()

    assert not isinstance(raised.value, DeadlineExceeded)


# --- Circuit breaker -----------------------------------------------------------------------------------------------


async def test_breaker_opens_after_consecutive_faults_and_then_fails_fast() -> None:
    script = Script(httpx.Response(500, json={}))
    upstream = client(script, RETRIES="0", BREAKER_FAILURES="3", BREAKER_COOLDOWN="30")

    for _ in range(3):
        with pytest.raises(UpstreamStatusError):
            await upstream.fetch_json("x")
    with pytest.raises(CircuitOpen) as raised:
        await upstream.fetch_json("x")
    await upstream.aclose()

    assert len(script.requests) == 3  # the fourth call never left the process
    assert 29 < raised.value.retry_after <= 30


async def test_not_found_answers_do_not_open_the_breaker() -> None:
    script = Script(httpx.Response(404, json={}))
    upstream = client(script, RETRIES="0", BREAKER_FAILURES="2")

    for _ in range(4):
        with pytest.raises(UpstreamNotFound):
            await upstream.fetch_json("x")
    await upstream.aclose()

    assert len(script.requests) == 4


async def test_breaker_closes_again_after_a_successful_probe() -> None:
    script = Script(httpx.Response(503), httpx.Response(503), ok())
    upstream = client(script, RETRIES="0", BREAKER_FAILURES="2", BREAKER_COOLDOWN="0.05")

    for _ in range(2):
        with pytest.raises(UpstreamStatusError):
            await upstream.fetch_json("x")
    with pytest.raises(CircuitOpen):
        await upstream.fetch_json("x")
    await asyncio.sleep(0.06)

    assert (await upstream.fetch_json("x")).payload == {"v": 1}  # the probe
    assert upstream.breaker.state == "closed"
    await upstream.aclose()


# --- Bulkhead ------------------------------------------------------------------------------------------------------


async def test_call_beyond_the_bulkhead_fails_fast_as_saturated() -> None:
    release = asyncio.Event()

    async def held() -> httpx.Response:
        await release.wait()
        return ok()

    upstream = client(Script(held), MAX_CONCURRENCY="1", QUEUE_TIMEOUT="0.05", RETRIES="0")
    first = asyncio.ensure_future(upstream.fetch_json("a"))
    await asyncio.sleep(0.01)

    with pytest.raises(UpstreamSaturated):
        await upstream.fetch_json("b")
    release.set()
    assert (await first).payload == {"v": 1}
    assert upstream.bulkhead.in_use == 0
    await upstream.aclose()


# --- Coalescing ----------------------------------------------------------------------------------------------------


async def test_identical_concurrent_calls_share_one_upstream_request() -> None:
    release = asyncio.Event()

    async def held() -> httpx.Response:
        await release.wait()
        return ok()

    script = Script(held)
    upstream = client(script)
    calls = [asyncio.ensure_future(upstream.fetch_json("same", params={"q": 1})) for _ in range(5)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*calls)
    await upstream.aclose()

    assert len(script.requests) == 1
    assert all(r.payload == {"v": 1} for r in results)
    assert sorted(r.cache for r in results) == ["miss", "shared", "shared", "shared", "shared"]


async def test_coalescing_can_be_turned_off_per_upstream() -> None:
    release = asyncio.Event()

    async def held() -> httpx.Response:
        await release.wait()
        return ok()

    script = Script(held)
    upstream = client(script, COALESCE="false")
    calls = [asyncio.ensure_future(upstream.fetch_json("same")) for _ in range(3)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*calls)
    await upstream.aclose()

    assert len(script.requests) == 3
    assert [r.cache for r in results] == ["miss"] * 3


async def test_different_urls_are_not_coalesced() -> None:
    script = Script(ok())
    upstream = client(script)

    await asyncio.gather(upstream.fetch_json("a"), upstream.fetch_json("b"), upstream.fetch_json("a", params={"p": 2}))
    await upstream.aclose()

    assert len(script.requests) == 3


# --- Caching -------------------------------------------------------------------------------------------------------


async def test_max_age_response_is_served_from_the_cache() -> None:
    script = Script(ok(**{"Cache-Control": "max-age=60"}))
    upstream = client(script)

    first = await upstream.fetch_json("x")
    second = await upstream.fetch_json("x")
    await upstream.aclose()

    assert (first.cache, second.cache) == ("miss", "hit")
    assert second.payload == first.payload
    assert len(script.requests) == 1


@pytest.mark.parametrize("cache_control", ["no-store", "private, max-age=60"])
async def test_uncacheable_responses_are_fetched_every_time(cache_control: str) -> None:
    script = Script(ok(**{"Cache-Control": cache_control}))
    upstream = client(script, CACHE_TTL="60")

    await upstream.fetch_json("x")
    await upstream.fetch_json("x")
    await upstream.aclose()

    assert len(script.requests) == 2


async def test_per_call_ttl_caches_when_the_upstream_says_nothing() -> None:
    script = Script(ok())
    upstream = client(script)

    await upstream.fetch_json("x", ttl=60)
    assert (await upstream.fetch_json("x", ttl=60)).cache == "hit"
    await upstream.aclose()


async def test_stale_entry_with_an_etag_is_revalidated() -> None:
    script = Script(ok({"v": "old"}, ETag='"v1"', **{"Cache-Control": "no-cache"}), httpx.Response(304))
    upstream = client(script)

    await upstream.fetch_json("x")
    second = await upstream.fetch_json("x")
    await upstream.aclose()

    assert second.cache == "revalidated"
    assert second.payload == {"v": "old"}
    assert script.requests[1].headers["If-None-Match"] == '"v1"'


async def test_failed_call_is_answered_from_a_stale_copy_within_the_window() -> None:
    script = Script(ok({"v": "good"}), httpx.Response(503))
    upstream = client(script, RETRIES="0", STALE_IF_ERROR="60")

    await upstream.fetch_json("x")
    stale = await upstream.fetch_json("x")
    await upstream.aclose()

    assert stale.cache == "stale"
    assert stale.payload == {"v": "good"}
    assert stale.error is not None
    assert stale.error.code == "upstream_status"


async def test_stale_copy_does_not_hide_a_not_found() -> None:
    script = Script(ok({"v": "good"}), httpx.Response(404))
    upstream = client(script, RETRIES="0", STALE_IF_ERROR="60")

    await upstream.fetch_json("x")
    with pytest.raises(UpstreamNotFound):
        await upstream.fetch_json("x")
    await upstream.aclose()


async def test_without_a_stale_window_the_failure_is_raised() -> None:
    script = Script(ok({"v": "good"}, **{"Cache-Control": "max-age=0"}), httpx.Response(503))
    upstream = client(script, RETRIES="0")

    await upstream.fetch_json("x")
    with pytest.raises(UpstreamStatusError):
        await upstream.fetch_json("x")
    await upstream.aclose()


async def test_a_body_that_is_not_json_is_never_cached() -> None:
    bad = httpx.Response(200, content=b"{nope", headers={"Cache-Control": "max-age=60"})
    script = Script(bad, ok(**{"Cache-Control": "max-age=60"}))
    upstream = client(script, RETRIES="0")

    with pytest.raises(UpstreamInvalidJSON):
        await upstream.fetch_json("x")
    fetched = await upstream.fetch_json("x")
    await upstream.aclose()

    assert (fetched.cache, fetched.payload) == ("miss", {"v": 1})
    assert len(script.requests) == 2
