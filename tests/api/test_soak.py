"""Soak: many concurrent requests while the upstream fails at random (bounded count and time, loopback only).
Every request gets a documented status, none gets a 500, none hangs, and memory does not grow."""

from __future__ import annotations

import asyncio
import gc
import re
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from tests.upstream_double import hang, json, random_mix, raw_body, reset, slow_headers

REQUESTS = 360
CONCURRENCY = 30
DOCUMENTED = {200, 502, 503, 504}


async def test_random_upstream_failures_under_load(api: Any, scripted: Any, settings: Any) -> None:
    upstream = scripted(RETRIES="1", BREAKER_FAILURES="8", BREAKER_COOLDOWN="0.2", STALE_IF_ERROR="5")
    settings.AGGREGATE_DEADLINE = 1.0
    upstream.default = random_mix(
        seed=7,
        weighted=[
            (json(), 60),
            (json(500, {}), 8),
            (json(503, {}, headers={"Retry-After": "0"}), 8),
            (reset(), 6),
            (slow_headers(0.6), 6),
            (raw_body(b"{nope"), 6),
            (hang(), 6),
        ],
    )
    statuses: Counter[int] = Counter()
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with slots:
            path = "/api/multiple-external-data/" if i % 2 else "/api/external-data/"
            response = await asyncio.wait_for(api.get(path), timeout=10)  # a hang fails the test here
            statuses[response.status_code] += 1
            if response.status_code != 200:
                assert response.headers["Content-Type"] == "application/problem+json"

    tracemalloc.start()
    try:
        memory = []
        third = REQUESTS // 3
        for start in range(0, REQUESTS, third):
            await asyncio.gather(*(one(i) for i in range(start, start + third)))
            gc.collect()
            memory.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()

    assert sum(statuses.values()) == REQUESTS
    assert set(statuses) <= DOCUMENTED, statuses
    assert statuses[200] > REQUESTS // 4, statuses  # it mostly works, despite the upstream
    assert len(set(statuses)) > 1, statuses  # and the failures did reach the API (the test tests something)
    growth = memory[-1] - memory[0]
    assert growth < 2 * 1024 * 1024, f"memory grew by {growth} bytes between the first and last third: {memory}"
    deadline = asyncio.get_running_loop().time() + 5
    while upstream.in_flight and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert upstream.in_flight == 0


# --- Protocol-level faults: bytes an ASGI upstream cannot send (tests/hostile_upstream.py serves them) -------------

PROTOCOL_REQUESTS = 400
PROTOCOL_CONCURRENCY = 50
# Decoded size of the gzip,gzip bomb (the body limit below is 1 MB): far above what a soak allocates.
BOMB_BYTES = 256 << 20
PROTOCOL_MIX = {
    "ok": 40,
    "garbage_status_line": 4,
    "not_http": 2,
    "1000_headers": 4,
    "200kb_header": 4,
    "short_content_length": 4,
    "answers_twice": 4,
    "gzip_gzip_bomb": 3,
    "unknown_coding": 3,
    "invalid_utf8": 3,
    "deep_nesting": 3,
    "nesting_1000": 2,
    "huge_number": 2,
    "bad_content_type": 2,
    "redirect": 2,
    "status_500": 3,
    "stall_mid_headers": 3,
    "stall_mid_body": 3,
    "reset_mid_body": 4,
}


def soak_path(i: int) -> str:
    """Request `i` of a soak: every aggregate endpoint in turn (single call, concurrent calls, a page, an overview
    with dependent and optional calls), product ids spread over the demo catalog."""
    return (
        "/api/external-data/",
        "/api/multiple-external-data/",
        f"/api/products/?page={1 + i % 12}&page_size=10",
        f"/api/products/{1 + i % 120}/?currency=EUR",
    )[i % 4]


def documented_codes() -> dict[int, set[str]]:
    """What a client of the aggregate endpoints may see, by status: the README's error table (the contract a client
    reads), for the upstream statuses; never 500."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    codes: dict[int, set[str]] = {200: {""}}
    for status, code in re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", readme, flags=re.MULTILINE):
        if int(status) in (502, 503, 504):
            codes.setdefault(int(status), set()).add(code)
    return codes


async def test_protocol_level_upstream_faults_under_load_never_answer_500(api: Any, settings: Any) -> None:
    """Garbage status lines, 1,000 headers, a 200 KB header, a body longer than its Content-Length, a second
    response on a kept-alive connection, a gzip,gzip bomb, unknown codings, invalid UTF-8, deep nesting, stalls and
    resets, at random under 50 concurrent requests: every answer is a documented status and code (no 500), no
    response carries the unsolicited second response, no request hangs, and no bomb is ever decoded whole."""
    from tests.conftest import install_registry
    from tests.hostile_upstream import hostile_upstream
    from tests.upstream_double import SMUGGLED, drawing, hostile_faults
    from upstreams import aiohttp_transport, close_registry, declared

    drawn: Counter[str] = Counter()
    mode = drawing(hostile_faults(bomb_bytes=BOMB_BYTES), PROTOCOL_MIX, seed=11, drawn=drawn)
    statuses: Counter[int] = Counter()
    codes: Counter[str] = Counter()
    smuggled = 0
    slots = asyncio.Semaphore(PROTOCOL_CONCURRENCY)

    async def one(i: int) -> None:
        nonlocal smuggled
        async with slots:
            response = await asyncio.wait_for(api.get(soak_path(i)), timeout=10)  # a hang fails the test here
            statuses[response.status_code] += 1
            smuggled += SMUGGLED in response.content
            if response.status_code != 200:
                assert response.headers["Content-Type"] == "application/problem+json"
                codes[f"{response.status_code} {response.json()['code']}"] += 1

    with hostile_upstream() as upstream:
        upstream.reset(mode)
        settings.UPSTREAMS = {
            name: {"URL": f"{upstream.url}/{name}", "TIMEOUT": "0.5", "CONNECT_TIMEOUT": "0.2", "RETRIES": "1"}
            | {"BREAKER_FAILURES": "8", "BREAKER_COOLDOWN": "0.2", "MAX_BODY_BYTES": str(1 << 20)}
            | {"COALESCE": "false"}  # each request draws its own fault: one fault shared by 50 would hide the rest
            for name in declared.names()
        }
        settings.AGGREGATE_DEADLINE = 1.5
        install_registry(settings.UPSTREAMS, aiohttp_transport)
        gc.collect()
        tracemalloc.start()
        try:
            await asyncio.gather(*(one(i) for i in range(PROTOCOL_REQUESTS)))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        await close_registry()  # our side closes its connections first: the upstream has nothing left to cut
        left = await settled(lambda: upstream.in_flight)

    report = f"statuses {dict(statuses)}, codes {dict(codes)}, faults drawn {dict(drawn)}"
    assert sum(statuses.values()) == PROTOCOL_REQUESTS
    assert statuses[500] == 0, report
    assert set(statuses) <= DOCUMENTED, report
    documented = documented_codes()
    for status_code, count in codes.items():
        status, code = status_code.split()
        assert code in documented[int(status)], (status_code, count, report)
    assert smuggled == 0, f"{smuggled} responses carried an upstream response meant for nobody; {report}"
    assert statuses[200] > PROTOCOL_REQUESTS // 5, report  # it mostly works, despite the upstream
    assert drawn.keys() == PROTOCOL_MIX.keys(), report  # every fault was tried at least once
    # A bomb decoded whole would take BOMB_BYTES at once; bounded decoding keeps far below it.
    assert peak < BOMB_BYTES // 2, f"peak traced memory {peak / 2**20:.0f} MB; {report}"
    assert left == 0, f"{left} upstream requests still in flight: a stalled answer nobody stopped waiting for"


async def settled(count: Any, *, seconds: float = 5.0) -> int:
    """`count()` once it reaches 0, or its value after `seconds` (work winding down after a load is not instant)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while count() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    return int(count())
