"""Fault injection over real sockets: a misbehaving upstream on 127.0.0.1, and for each misbehaviour the documented
status and code, an answer within the deadline, and nothing left behind (no request in flight at the upstream, no
bulkhead slot held, no coalesced flight, no stray task)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.api.helpers import assert_problem
from tests.conftest import assert_clean, install_registry
from tests.servers import closed_port_url
from tests.upstream_double import (
    hang,
    huge,
    json,
    raw_body,
    reset,
    slow_headers,
    trickle,
)
from upstreams import aiohttp_transport

TIMEOUT = 0.5  # UPSTREAM_*_TIMEOUT in the `scripted` fixture
MARGIN = 1.0  # generous: a loaded CI machine must not make these flaky; a missing timeout would take far longer


async def timed_get(api: Any, url: str, **headers: str) -> tuple[Any, float]:
    started = time.monotonic()
    response = await api.get(url, headers=headers)
    return response, time.monotonic() - started


@pytest.mark.parametrize(
    ("behaviour", "extra", "status", "code"),
    [
        (slow_headers(3), {}, 504, "upstream_timeout"),
        (trickle(chunks=100, interval=0.05), {}, 504, "upstream_timeout"),
        (reset(), {}, 502, "upstream_protocol_error"),
        (json(500, {"error": "boom"}), {}, 502, "upstream_status"),
        (raw_body(b'{"items": [1, 2'), {}, 502, "upstream_invalid_json"),
        (raw_body(b"<html>maintenance</html>", content_type="text/html"), {}, 502, "upstream_bad_content_type"),
        (huge(2_000_000), {"MAX_BODY_BYTES": "100000"}, 502, "upstream_body_too_large"),
        (json(200, {"source": 1, "items": "none"}), {}, 502, "upstream_invalid_payload"),
        (hang(), {}, 504, "upstream_timeout"),
    ],
    ids=["slow-headers", "trickle", "reset", "500", "invalid-json", "html", "too-large", "wrong-shape", "hang"],
)
async def test_misbehaviour_maps_to_its_documented_problem_in_time(
    api: Any, scripted: Any, behaviour: Any, extra: dict[str, str], status: int, code: str
) -> None:
    upstream = scripted(RETRIES="0", **extra)
    upstream.default = behaviour

    response, elapsed = await timed_get(api, "/api/external-data/")

    body = assert_problem(response, status, code)
    assert body["upstream"] == "slow"
    assert elapsed < TIMEOUT + MARGIN
    await assert_clean(upstream)


async def test_refused_connection_is_503_in_time(api: Any, scripted: Any, settings: Any) -> None:
    scripted(RETRIES="1")
    settings.UPSTREAMS["slow"]["URL"] = closed_port_url()
    install_registry(settings.UPSTREAMS, aiohttp_transport)

    response, elapsed = await timed_get(api, "/api/external-data/")

    assert_problem(response, 503, "upstream_unreachable")
    assert elapsed < TIMEOUT + MARGIN


async def test_hang_beyond_the_request_deadline_is_504_deadline_exceeded(
    api: Any, scripted: Any, settings: Any
) -> None:
    upstream = scripted(TIMEOUT="5", RETRIES="2")
    upstream.default = hang()
    settings.AGGREGATE_DEADLINE = 0.3

    response, elapsed = await timed_get(api, "/api/external-data/")

    assert_problem(response, 504, "deadline_exceeded")
    assert elapsed < 0.3 + MARGIN
    await assert_clean(upstream)
    assert upstream.requests == 1  # no retry was started that could not finish in time


async def test_client_deadline_header_shortens_the_request(api: Any, scripted: Any) -> None:
    upstream = scripted(TIMEOUT="5", RETRIES="0")
    upstream.default = hang()

    response, elapsed = await timed_get(api, "/api/external-data/", **{"Request-Timeout": "0.2"})

    assert_problem(response, 504, "deadline_exceeded")
    assert elapsed < 0.2 + MARGIN
    await assert_clean(upstream)


@pytest.mark.parametrize("value", ["soon", "0", "-1", "99999"])
async def test_invalid_client_deadline_is_400(api: Any, scripted: Any, value: str) -> None:
    upstream = scripted()

    response = await api.get("/api/external-data/", headers={"Request-Timeout": value})

    body = assert_problem(response, 400, "invalid_request")
    assert body["errors"][0]["field"] == "Request-Timeout"
    assert upstream.requests == 0


async def test_429_with_retry_after_is_retried_after_the_wait(api: Any, scripted: Any) -> None:
    upstream = scripted(RETRIES="2").then(json(429, {}, headers={"Retry-After": "0"}), json(503, {}))

    response = await api.get("/api/external-data/")

    assert response.status_code == 200
    assert upstream.requests == 3
    assert 'desc="slow miss retried=2"' in response.headers["Server-Timing"]


async def test_500_storm_opens_the_breaker_which_fails_fast_then_recovers(api: Any, scripted: Any) -> None:
    upstream = scripted(RETRIES="0", BREAKER_FAILURES="3", BREAKER_COOLDOWN="0.3")
    upstream.default = json(500, {})

    for _ in range(3):
        assert_problem(await api.get("/api/external-data/"), 502, "upstream_status")
    opened = await api.get("/api/external-data/")
    assert_problem(opened, 503, "circuit_open")
    assert opened.headers["Retry-After"] == "1"
    assert upstream.requests == 3  # failing fast: the storm is no longer fed
    readiness = (await api.get("/readyz")).json()
    assert (readiness["status"], readiness["circuits"]["slow"]) == ("degraded", "open")

    await asyncio.sleep(0.35)
    upstream.default = json()
    assert (await api.get("/api/external-data/")).status_code == 200  # the half-open probe
    assert (await api.get("/readyz")).json()["circuits"]["slow"] == "closed"
    await assert_clean(upstream)


async def test_concurrent_identical_requests_share_one_upstream_call(api: Any, scripted: Any) -> None:
    upstream = scripted()
    upstream.default = slow_headers(0.2)

    responses = await asyncio.gather(*(api.get("/api/external-data/") for _ in range(5)))

    assert [r.status_code for r in responses] == [200] * 5
    assert upstream.requests == 1
    assert sum('desc="slow shared"' in r.headers["Server-Timing"] for r in responses) == 4


async def test_saturated_bulkhead_is_503_upstream_saturated(api: Any, scripted: Any) -> None:
    upstream = scripted(MAX_CONCURRENCY="1", QUEUE_TIMEOUT="0.05", RETRIES="0")
    upstream.default = slow_headers(0.3)

    first = asyncio.ensure_future(api.get("/api/external-data/"))
    await asyncio.sleep(0.1)
    second = await api.get("/api/multiple-external-data/")  # other URLs (no coalescing) on the same upstream

    assert (await first).status_code == 200
    assert_problem(second, 503, "upstream_saturated")
