"""The API in front of a hostile upstream over raw sockets (tests/hostile_upstream.py): whatever bytes the upstream
sends, the client gets the documented status and problem code (never a 500, never a byte the upstream chose), in
time, with bounded memory and a responsive event loop, and nothing left in flight; and no response meant for nobody
is ever served to the next client."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from tests.api.helpers import PRODUCT, RATES, REVIEW, STOCK, assert_problem
from tests.conftest import assert_clean, install_registry
from tests.hostile_upstream import (
    OK_BODY,
    HostileUpstream,
    answer,
    answer_twice,
    deep_nesting,
    gzip_of_gzip_bomb,
    ok,
    response,
    stall_after,
    watch,
)
from upstreams import aiohttp_transport, declared

TIMEOUT = 0.5
MARGIN = 1.5  # generous: a loaded machine must not make these flaky; a missing timeout would take far longer
LIMIT = 1 << 20
MEMORY_BOUND = 24 << 20  # the body limit and a request's worth of Django, with room to spare
LAG_BOUND = 0.05  # seconds of CPU the loop may be held at once
INJECTED = b"INJECTED-by-the-upstream"

HOSTILE: dict[str, tuple[Any, int, str]] = {
    "gzip-of-gzip-bomb": (
        lambda: answer(response(gzip_of_gzip_bomb(256 << 20), headers=[(b"Content-Encoding", b"gzip, gzip")])),
        502,
        "upstream_bad_response",
    ),
    "unknown-coding": (
        lambda: answer(response(OK_BODY, headers=[(b"Content-Encoding", b"x-" + INJECTED)])),
        502,
        "upstream_bad_response",
    ),
    "garbage-status-line": (lambda: answer(b"HTTP/1.1 " + INJECTED + b"\r\n\r\n"), 502, "upstream_protocol_error"),
    "1000-headers": (
        lambda: answer(response(headers=[(b"X-H%d" % i, INJECTED) for i in range(1000)])),
        502,
        "upstream_protocol_error",
    ),
    "200kb-header": (
        lambda: answer(response(headers=[(b"X-Big", INJECTED * 10_000)])),
        502,
        "upstream_protocol_error",
    ),
    "content-length-smaller-than-body": (lambda: answer(response(length=10)), 502, "upstream_protocol_error"),
    "content-type-not-json": (
        lambda: answer(response(content_type=b"text/" + INJECTED + b"<script>" + b"x" * 8000)),
        502,
        "upstream_bad_content_type",
    ),
    "stall-mid-headers": (lambda: stall_after(b"HTTP/1.1 200 OK\r\nContent-Ty"), 504, "upstream_timeout"),
    "stall-mid-body": (lambda: stall_after(response()[:-5]), 504, "upstream_timeout"),
    "invalid-utf8": (lambda: answer(response(b'{"message": "\xff\xfe"}')), 502, "upstream_invalid_json"),
    "100k-deep-nesting": (lambda: answer(response(deep_nesting(100_000))), 502, "upstream_invalid_json"),
    "huge-number": (lambda: answer(response(b'{"n": 1e999999}')), 502, "upstream_invalid_json"),
    "redirect": (
        lambda: answer(response(b"", status=b"302 Found", headers=[(b"Location", b"http://" + INJECTED + b"/")])),
        502,
        "upstream_status",
    ),
}


@pytest.fixture
def hostile(hostile_server: HostileUpstream, settings: Any) -> Any:
    """Every upstream served by the hostile server; returns a function that applies per-upstream settings."""

    def configure(**values: str) -> HostileUpstream:
        hostile_server.reset()
        settings.UPSTREAMS = {
            name: {
                "URL": f"{hostile_server.url}/{name}",
                "TIMEOUT": str(TIMEOUT),
                "CONNECT_TIMEOUT": str(TIMEOUT),
                "MAX_BODY_BYTES": str(LIMIT),
                "RETRIES": "0",
                **values,
            }
            for name in declared.names()
        }
        install_registry(settings.UPSTREAMS, aiohttp_transport)
        return hostile_server

    return configure


@pytest.mark.parametrize(("make_mode", "status", "code"), list(HOSTILE.values()), ids=list(HOSTILE))
async def test_hostile_upstream_is_a_documented_problem_in_time_bounded_and_clean(
    api: Any, hostile: Any, make_mode: Any, status: int, code: str
) -> None:
    upstream = hostile()
    assert (await api.get("/api/external-data/")).status_code == 200  # warm: first-request costs are not the test's
    upstream.reset(make_mode())

    async with watch() as watched:
        started = time.monotonic()
        response = await api.get("/api/external-data/")
        elapsed = time.monotonic() - started

    assert watched.memory < MEMORY_BOUND, f"{watched.memory / 2**20:.0f} MiB allocated"
    assert watched.max_lag < LAG_BOUND, f"loop held {watched.max_lag * 1000:.0f} ms (wall {watched.max_gap:.3f} s)"
    assert elapsed < TIMEOUT + MARGIN
    body = assert_problem(response, status, code)
    assert body["upstream"] == "slow"
    assert INJECTED not in response.content  # no byte the upstream chose
    assert b"script" not in response.content
    await assert_clean(upstream)


async def test_protocol_errors_are_retried_then_open_the_breaker(api: Any, hostile: Any) -> None:
    upstream = hostile(RETRIES="1", BREAKER_FAILURES="2", BREAKER_COOLDOWN="30")
    upstream.reset(answer(b"HTTP/1.1 abc\r\n\r\n"))

    assert_problem(await api.get("/api/external-data/"), 502, "upstream_protocol_error")
    assert upstream.requests == 2  # retried like any broken exchange...
    assert_problem(await api.get("/api/external-data/"), 503, "circuit_open")  # ...and both attempts were faults
    assert upstream.requests == 2
    await assert_clean(upstream)


async def test_a_response_meant_for_nobody_is_never_served_to_the_next_client(api: Any, hostile: Any) -> None:
    upstream = hostile()
    ok_body = orjson.loads(OK_BODY)
    first = orjson.dumps({**ok_body, "message": "first"})
    smuggled = orjson.dumps({**ok_body, "message": "SMUGGLED"})
    upstream.then(answer_twice(response(first), response(smuggled, headers=[(b"Cache-Control", b"max-age=600")])))
    upstream.mode = ok()

    assert (await api.get("/api/external-data/")).json()["message"] == "first"
    await asyncio.sleep(0.2)  # the second response arrives while the connection sits in the pool
    assert (await api.get("/api/external-data/")).json()["message"] == "ok"
    assert (await api.get("/api/external-data/")).json()["message"] == "ok"  # and nothing smuggled was cached
    assert upstream.connections == 2
    await assert_clean(upstream)


async def test_an_upstream_chosen_key_never_reaches_the_error_paths(api: Any, upstream_mock: Any) -> None:
    """A dictionary key is the upstream's text too: a failing one is reported as `*`, not echoed."""
    upstream_mock.get("http://catalog.upstream.test/products/7").respond(json=PRODUCT)
    upstream_mock.get("http://inventory.upstream.test/stock/SKU-00007").respond(json=STOCK)
    upstream_mock.get("http://reviews.upstream.test/products/7/summary").respond(json=REVIEW)
    rates = {"EUR": "0.92", INJECTED.decode() + "<script>": "not a number"}
    upstream_mock.get("http://fx.upstream.test/rates/USD").respond(json={**RATES, "rates": rates})

    response = await api.get("/api/products/7/?currency=EUR")

    assert response.status_code == 200
    (missing,) = response.json()["missing"]
    assert (missing["source"], missing["code"]) == ("fx", "upstream_invalid_payload")
    assert INJECTED not in response.content
    assert b"<script>" not in response.content
