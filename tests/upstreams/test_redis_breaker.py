"""The Redis-backed circuit breaker: one view of an upstream's health shared by every process (here: two breakers
with their own Redis connections, as two workers would have), and failing open when Redis is gone."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from tests.servers import closed_port_url
from upstreams import (
    BreakerPolicy,
    BreakerState,
    CircuitOpen,
    UpstreamConnectError,
    UpstreamNotFound,
    UpstreamRegistry,
    parse_upstreams,
)
from upstreams.redis_breaker import RedisCircuitBreaker, RedisClients

POLICY = BreakerPolicy(failures=3, failure_ratio=0.5, min_calls=20, window=30, cooldown=0.2)


def fault() -> UpstreamConnectError:
    return UpstreamConnectError("up")


class Worker:
    """One process's breaker for upstream `up`, with its own Redis connection pool."""

    def __init__(self, url: str, policy: BreakerPolicy = POLICY) -> None:
        self.clients = RedisClients(url)
        self.breaker = RedisCircuitBreaker("up", policy, clients=self.clients, probe_ttl=5)

    async def call(self, error: Exception | None = None) -> None:
        probe = await self.breaker.acquire()
        await self.breaker.report(error, probe=probe)  # type: ignore[arg-type]


@pytest.fixture
async def workers(redis_url: str) -> Any:
    pair = (Worker(redis_url), Worker(redis_url))
    yield pair
    for worker in pair:
        await worker.clients.aclose()


async def test_faults_seen_by_one_process_open_the_circuit_for_all(workers: Any) -> None:
    a, b = workers
    for _ in range(3):
        await a.call(fault())

    with pytest.raises(CircuitOpen) as raised:
        await b.breaker.acquire()
    assert 0 < raised.value.retry_after <= POLICY.cooldown
    assert (await b.breaker.status()).state is BreakerState.OPEN


async def test_consecutive_faults_add_up_across_processes(workers: Any) -> None:
    a, b = workers
    await a.call(fault())
    await b.call(fault())
    await a.call(fault())

    assert (await a.breaker.status()).state is BreakerState.OPEN


async def test_an_answer_anywhere_resets_the_consecutive_count(workers: Any) -> None:
    a, b = workers
    await a.call(fault())
    await a.call(fault())
    await b.call(UpstreamNotFound("up"))  # the upstream answered: not a fault
    await a.call(fault())

    status = await a.breaker.status()
    assert status.state is BreakerState.CLOSED
    assert status.consecutive_failures == 1


async def test_failure_ratio_is_computed_over_every_process(redis_url: str) -> None:
    policy = BreakerPolicy(failures=100, failure_ratio=0.5, min_calls=4, window=30, cooldown=1)
    a, b = Worker(redis_url, policy), Worker(redis_url, policy)
    await a.call(None)
    await b.call(fault())
    await a.call(None)
    assert (await a.breaker.status()).state is BreakerState.CLOSED  # 3 calls: below min_calls

    await b.call(fault())

    assert (await a.breaker.status()).state is BreakerState.OPEN
    await a.clients.aclose()
    await b.clients.aclose()


async def test_only_one_process_gets_the_half_open_probe_and_its_success_closes_for_all(workers: Any) -> None:
    a, b = workers
    for _ in range(3):
        await a.call(fault())
    await asyncio.sleep(POLICY.cooldown + 0.05)

    assert await a.breaker.acquire() is True  # the probe
    with pytest.raises(CircuitOpen):
        await b.breaker.acquire()
    await a.breaker.report(None, probe=True)

    assert await b.breaker.acquire() is False  # closed: an ordinary call
    assert (await b.breaker.status()).state is BreakerState.CLOSED


async def test_a_failed_probe_reopens_for_a_fresh_cooldown(workers: Any) -> None:
    a, b = workers
    for _ in range(3):
        await a.call(fault())
    await asyncio.sleep(POLICY.cooldown + 0.05)

    probe = await b.breaker.acquire()
    await b.breaker.report(fault(), probe=probe)

    with pytest.raises(CircuitOpen) as raised:
        await a.breaker.acquire()
    assert raised.value.retry_after > POLICY.cooldown / 2


async def test_an_abandoned_probe_lets_another_process_probe(workers: Any) -> None:
    a, b = workers
    for _ in range(3):
        await a.call(fault())
    await asyncio.sleep(POLICY.cooldown + 0.05)

    assert await a.breaker.acquire() is True
    await a.breaker.abandon(probe=True)  # its client went away

    assert await b.breaker.acquire() is True


async def test_unreachable_redis_fails_open_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    worker = Worker(closed_port_url().replace("http", "redis"))

    with caplog.at_level(logging.WARNING, logger="tributary.breaker"):
        for _ in range(5):
            await worker.call(fault())  # would open a working breaker
        assert await worker.breaker.acquire() is False  # calls still go out

    assert (await worker.breaker.status()).state is BreakerState.CLOSED
    assert sum("fails open" in r.getMessage() for r in caplog.records) == 1  # once, not per call
    await worker.clients.aclose()


async def test_two_registries_share_circuits_through_redis(redis_url: str) -> None:
    """End to end through the client: process 1's failures make process 2 fail fast without calling."""
    calls = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused")

    configs = parse_upstreams({"up": {"URL": "http://up.test", "RETRIES": "0", "BREAKER_FAILURES": "2"}})
    first = UpstreamRegistry(configs, transport_factory=lambda c: httpx.MockTransport(refuse), redis_url=redis_url)
    second = UpstreamRegistry(configs, transport_factory=lambda c: httpx.MockTransport(refuse), redis_url=redis_url)
    try:
        for _ in range(2):
            with pytest.raises(UpstreamConnectError):
                await first.client("up").fetch_json("x")
        with pytest.raises(CircuitOpen):
            await second.client("up").fetch_json("x")
        assert calls == 2
        assert (await second.circuits())["up"].state is BreakerState.OPEN
    finally:
        await first.aclose()
        await second.aclose()
