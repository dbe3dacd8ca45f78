"""UpstreamClient against a hostile upstream over raw sockets (tests/hostile_upstream.py): for every way an upstream
can misbehave at the byte level, the documented error (never a library exception), within the call's time budget,
memory growth bounded by the body limit, the event loop never held for long, and nothing left in flight. And a
kept-alive connection carrying bytes nobody asked for is never handed to the next request.

The bounds are wide on purpose: what they catch is a decompression bomb decoded on the loop (hundreds of MB, the
loop held for a second) or a missing timeout (the call hanging), not a few milliseconds.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import zlib
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.client_proto import ResponseHandler

from tests.conftest import assert_clean
from tests.hostile_upstream import (
    OK_BODY,
    HostileUpstream,
    Mode,
    answer,
    answer_twice,
    close_after,
    deep_nesting,
    gzip_of_gzip_bomb,
    ok,
    response,
    stall_after,
    watch,
    zeros_gzip,
)
from upstreams import UpstreamClient, UpstreamConfig, UpstreamError, aiohttp_transport, httpx_transport
from upstreams.breaker import BreakerState
from upstreams.transport import GuardedConnector, GuardedResponseHandler

TIMEOUT = 0.5  # the call's time budget
MARGIN = 1.5  # generous: a loaded machine must not make these flaky; a missing timeout would take far longer
LIMIT = 1 << 20  # MAX_BODY_BYTES
MEMORY_BOUND = 16 << 20  # the limit, one decoding step and the client's own allocations, with room to spare
LAG_BOUND = 0.05  # seconds of CPU the loop may be held at once
BOMB = 256 << 20  # decoded size of the bombs: enough to show on the loop and in memory, cheap to build once

PROTOCOL = "upstream_protocol_error"
BAD = "upstream_bad_response"
INVALID_JSON = "upstream_invalid_json"
TIMEOUT_CODE = "upstream_timeout"


def coded(body: bytes, coding: bytes) -> Mode:
    return answer(response(body, headers=[(b"Content-Encoding", coding)]))


def deflate(data: bytes, *, raw: bool = False) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


HOSTILE: dict[str, tuple[Any, str]] = {
    # 1. codings: bounded as decoded, one layer of a known coding only
    "gzip-of-gzip-bomb": (lambda: coded(gzip_of_gzip_bomb(BOMB), b"gzip, gzip"), BAD),
    "gzip-gzip-gzip": (lambda: coded(zlib.compress(b"{}"), b"gzip,gzip,gzip"), BAD),
    "gzip-bomb": (lambda: coded(zeros_gzip(BOMB), b"gzip"), "upstream_body_too_large"),
    "deflate-bomb": (lambda: coded(deflate(bytes(64 << 20), raw=True), b"deflate"), "upstream_body_too_large"),
    "gzip-on-two-header-lines": (
        lambda: answer(response(gzip_of_gzip_bomb(BOMB), headers=[(b"Content-Encoding", b"gzip")] * 2)),
        BAD,
    ),
    "transfer-encoding-gzip-chunked": (
        lambda: answer(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            + b"%x\r\n" % len(zeros_gzip(BOMB))
            + zeros_gzip(BOMB)
            + b"\r\n0\r\n\r\n"
        ),
        INVALID_JSON,  # aiohttp removes the chunking only; nothing decodes a transfer coding: the body stays gzip
    ),
    "unknown-coding": (lambda: coded(OK_BODY, b"x-evil"), BAD),
    "brotli-not-asked-for": (lambda: coded(OK_BODY, b"br"), BAD),
    "corrupt-gzip": (lambda: coded(b"\x1f\x8b\x08\x00garbage" * 10, b"gzip"), BAD),
    "truncated-gzip": (lambda: coded(zeros_gzip(1000)[:-8], b"gzip"), BAD),
    # 2. protocol-level garbage: a broken exchange, whatever aiohttp raised
    "garbage-status-line": (lambda: answer(b"HTTP/1.1 abc nonsense\r\n\r\n"), PROTOCOL),
    "binary-status-line": (lambda: answer(b"\x00\xff\xfe garbage\r\n\r\n"), PROTOCOL),
    "1000-headers": (lambda: answer(response(headers=[(b"X-H%d" % i, b"v") for i in range(1000)])), PROTOCOL),
    "200kb-header": (lambda: answer(response(headers=[(b"X-Big", b"a" * 200_000)])), PROTOCOL),
    "content-length-smaller-than-body": (lambda: answer(response(length=10)), PROTOCOL),
    "content-length-larger-then-close": (lambda: close_after(response(length=len(OK_BODY) + 100)), PROTOCOL),
    "content-length-not-a-number": (lambda: answer(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}"), PROTOCOL),
    "bad-chunk-size": (
        lambda: close_after(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        ),
        PROTOCOL,
    ),
    "closed-before-status": (lambda: close_after(b""), PROTOCOL),
    # stalls: the call's own timeout
    "stall-mid-headers": (lambda: stall_after(b"HTTP/1.1 200 OK\r\nContent-Type: appl"), TIMEOUT_CODE),
    "stall-mid-body": (lambda: stall_after(response()[:-5]), TIMEOUT_CODE),
    # bodies that are not JSON we can use
    "invalid-utf8": (lambda: answer(response(b'{"message": "\xff\xfe"}')), INVALID_JSON),
    "100k-deep-nesting": (lambda: answer(response(deep_nesting(100_000))), INVALID_JSON),
    "huge-exponent": (lambda: answer(response(b'{"n": 1e999999}')), INVALID_JSON),
    "100k-digit-number": (lambda: answer(response(b'{"n": ' + b"9" * 100_000 + b"}")), INVALID_JSON),
    "redirect": (
        lambda: answer(response(b"", status=b"302 Found", headers=[(b"Location", b"http://127.0.0.1:9/")])),
        "upstream_status",
    ),
    "content-type-not-json": (
        lambda: answer(response(content_type=b"text/<script>INJECTED" + b"x" * 8000)),
        "upstream_bad_content_type",
    ),
    "close-delimited-body-over-limit": (
        lambda: close_after(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + b" " * (4 * LIMIT)),
        "upstream_body_too_large",
    ),
}


@pytest.fixture
def hostile(hostile_server: HostileUpstream) -> HostileUpstream:
    hostile_server.reset()
    return hostile_server


def client_for(upstream: HostileUpstream, **policy: Any) -> UpstreamClient:
    config = UpstreamConfig(
        name="hostile", base_url=upstream.url, timeout=TIMEOUT, connect_timeout=TIMEOUT, max_body_bytes=LIMIT
    )
    retry = replace(config.retry, retries=policy.pop("retries", 0))
    breaker = replace(config.breaker, failures=policy.pop("breaker_failures", config.breaker.failures))
    config = replace(config, retry=retry, breaker=breaker, **policy)
    return UpstreamClient(config, transport=aiohttp_transport(config))


@pytest.mark.parametrize(("make_mode", "code"), list(HOSTILE.values()), ids=list(HOSTILE))
async def test_hostile_upstream_is_the_documented_error_in_time_bounded_and_clean(
    hostile: HostileUpstream, make_mode: Any, code: str
) -> None:
    hostile.reset(make_mode())
    client = client_for(hostile)

    async with watch() as watched:
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            await client.fetch_json("data")
        elapsed = time.monotonic() - started
    await client.aclose()

    assert watched.memory < MEMORY_BOUND, f"{watched.memory / 2**20:.0f} MiB allocated"
    assert watched.max_lag < LAG_BOUND, f"loop held {watched.max_lag * 1000:.0f} ms (wall {watched.max_gap:.3f} s)"
    assert elapsed < TIMEOUT + MARGIN
    assert caught.value.code == code
    assert caught.value.upstream == "hostile"
    await assert_clean(hostile, client)


async def test_the_watch_sees_a_held_loop_and_a_large_allocation() -> None:
    """The control: the probe and the memory bound can fail."""
    async with watch() as watched:
        held_until = time.thread_time() + 2 * LAG_BOUND
        while time.thread_time() < held_until:
            pass
        allocated = bytes(2 * MEMORY_BOUND)

    assert watched.max_lag >= 2 * LAG_BOUND
    assert watched.memory >= len(allocated)


@pytest.mark.parametrize(
    "coding",
    [b"gzip", b"x-gzip", b"deflate", b"deflate-raw", b"identity", b"gzip, identity", b"GZIP"],
)
async def test_one_layer_of_a_requested_coding_is_decoded(hostile: HostileUpstream, coding: bytes) -> None:
    encoded = {
        b"deflate": deflate(OK_BODY),
        b"deflate-raw": deflate(OK_BODY, raw=True),
        b"identity": OK_BODY,
    }.get(coding, zlib.compress(OK_BODY, wbits=zlib.MAX_WBITS | 16))
    hostile.reset(coded(encoded, b"deflate" if coding == b"deflate-raw" else coding))
    client = client_for(hostile)

    assert await client.get_json("data") == orjson.loads(OK_BODY)
    await client.aclose()


async def test_a_decoded_body_just_under_the_limit_is_accepted(hostile: HostileUpstream) -> None:
    body = b'{"pad": "' + b"x" * (LIMIT - 20) + b'"}'
    hostile.reset(coded(zlib.compress(body, wbits=zlib.MAX_WBITS | 16), b"gzip"))
    client = client_for(hostile)

    assert len((await client.get_json("data"))["pad"]) == LIMIT - 20
    await client.aclose()


async def test_a_reason_phrase_that_is_not_utf8_neither_fails_the_call_nor_leaks_its_connection(
    hostile: HostileUpstream,
) -> None:
    hostile.reset(answer(response(status=b"200 \xff\xfe\xc3")))
    client = client_for(hostile, max_connections=2)

    for _ in range(5):  # more calls than the pool has connections: a leaked one would make the third wait
        assert await client.get_json("data") == orjson.loads(OK_BODY)
    await client.aclose()

    assert hostile.connections == 1


async def test_upstream_text_never_reaches_the_error_detail(hostile: HostileUpstream) -> None:
    hostile.reset(answer(response(content_type=b"text/INJECTED<script>")))
    client = client_for(hostile)

    with pytest.raises(UpstreamError) as caught:
        await client.get_json("data")
    await client.aclose()

    assert "INJECTED" not in str(caught.value)
    assert "script" not in caught.value.detail


async def test_protocol_errors_are_retried_like_a_broken_exchange(hostile: HostileUpstream) -> None:
    hostile.then(answer(b"HTTP/1.1 abc\r\n\r\n"), answer(response(headers=[(b"X", b"a" * 100_000)])))
    client = client_for(hostile, retries=2)

    assert await client.get_json("data") == orjson.loads(OK_BODY)
    await client.aclose()

    assert hostile.requests == 3


async def test_protocol_errors_count_as_breaker_faults(hostile: HostileUpstream) -> None:
    hostile.reset(answer(b"HTTP/1.1 abc\r\n\r\n"))
    client = client_for(hostile, breaker_failures=2)

    for _ in range(2):
        with pytest.raises(UpstreamError, match="broke"):
            await client.get_json("data")
    await client.aclose()

    assert (await client.breaker.status()).state is BreakerState.OPEN


# -- 3. a kept-alive connection carrying bytes nobody asked for ----------------------------------------------------

FIRST = orjson.dumps({**orjson.loads(OK_BODY), "message": "first"})
SMUGGLED = orjson.dumps({**orjson.loads(OK_BODY), "message": "SMUGGLED"})
CACHEABLE = [(b"Cache-Control", b"max-age=600")]


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(lambda: answer_twice(response(FIRST), response(SMUGGLED, headers=CACHEABLE)), id="later"),
        pytest.param(
            lambda: answer_twice(response(FIRST), response(SMUGGLED, headers=CACHEABLE), gap=0), id="same-write"
        ),
        pytest.param(lambda: answer_twice(response(FIRST), b"HTTP/1.1 200 OK\r\nContent-"), id="partial-later"),
        pytest.param(lambda: answer_twice(response(FIRST), b"garbage\r\n\r\n"), id="garbage-later"),
        pytest.param(lambda: split_body_then_smuggle(), id="body-split-then-smuggle"),
    ],
)
async def test_a_response_meant_for_nobody_is_never_served_to_the_next_request(
    hostile: HostileUpstream, extra: Any
) -> None:
    hostile.then(extra())
    client = client_for(hostile)

    assert (await client.get_json("first"))["message"] == "first"
    await asyncio.sleep(0.2)  # the extra bytes arrive while the connection sits in the pool
    second = await client.fetch_json("second")
    third = await client.fetch_json("second")
    await client.aclose()

    assert second.payload["message"] == "ok"
    assert (third.payload["message"], third.cache) == ("ok", "miss")  # nothing smuggled was cached either
    assert hostile.connections == 2  # the tainted connection was closed, never reused
    await assert_clean(hostile, client)


async def test_a_partial_response_left_after_a_response_is_dropped_never_completed_by_the_next(
    hostile: HostileUpstream,
) -> None:
    """Half a message in the same read as the end of a response stays in that response's parser, which the next
    request replaces: it cannot become (or prefix) the next response. (Its rest, sent while idle, closes the
    connection: the `partial-later` case above.)"""
    hostile.then(answer_twice(response(FIRST), b"HTTP/1.1 200 OK\r\nContent-Type: application/js", gap=0))
    client = client_for(hostile)

    assert (await client.get_json("first"))["message"] == "first"
    assert (await client.get_json("second"))["message"] == "ok"
    await client.aclose()


@pytest.mark.parametrize("gap", [0, 0.05])
async def test_the_httpx_transport_never_serves_a_response_meant_for_nobody_either(
    hostile: HostileUpstream, gap: float
) -> None:
    """httpcore would parse bytes left after a response as the next one's: that transport keeps no connection."""
    hostile.then(answer_twice(response(FIRST), response(SMUGGLED, headers=CACHEABLE), gap=gap))
    config = UpstreamConfig(name="hostile", base_url=hostile.url, timeout=TIMEOUT, max_body_bytes=LIMIT)
    client = UpstreamClient(config, transport=httpx_transport(config))

    assert (await client.get_json("first"))["message"] == "first"
    await asyncio.sleep(0.2)
    assert (await client.get_json("second"))["message"] == "ok"
    await client.aclose()


def split_body_then_smuggle() -> Mode:
    """The body's end and a second response in one write, after its start: aiohttp pools the connection in the
    middle of parsing that write, then parses the second response into the pooled connection."""
    first = response(FIRST)

    async def mode(exchange: Any) -> bool:
        await exchange.send(first[:-10])
        await asyncio.sleep(0.05)
        await exchange.send(first[-10:] + response(SMUGGLED, headers=CACHEABLE))
        return True

    return mode


async def test_a_well_behaved_kept_alive_connection_is_reused(hostile: HostileUpstream) -> None:
    """The control: the guard does not turn connection reuse off."""
    hostile.reset(ok())
    client = client_for(hostile)

    for _ in range(3):
        await client.get_json("data")
        await asyncio.sleep(0.05)
    await client.aclose()

    assert (hostile.requests, hostile.connections) == (3, 1)


def test_the_aiohttp_seams_the_guard_overrides_are_still_there() -> None:
    """upstreams/transport.py overrides private aiohttp API (aiohttp 3.14): fail loudly if an upgrade moves it."""
    connector_release = inspect.signature(aiohttp.BaseConnector._release)
    assert list(connector_release.parameters) == ["self", "key", "protocol", "should_close"]
    assert "set_response_params" in vars(ResponseHandler)
    assert "data_received" in vars(ResponseHandler)
    assert "should_close" in vars(ResponseHandler)


async def test_the_transport_builds_guarded_connections(hostile: HostileUpstream) -> None:
    client = client_for(hostile)
    await client.get_json("data")

    session = client._transport.client  # type: ignore[attr-defined]
    assert isinstance(session.connector, GuardedConnector)
    (pooled,) = [proto for conns in session.connector._conns.values() for proto, _ in conns]
    assert isinstance(pooled, GuardedResponseHandler)
    assert pooled.idle
    await client.aclose()


@pytest.mark.parametrize("max_age", ["9" * 30, "9" * 400, "9" * 5000])
async def test_a_cache_lifetime_no_store_can_hold_is_capped_not_a_500(
    hostile: HostileUpstream, redis_url: str, settings: Any, max_age: str
) -> None:
    """Redis refuses an expiry past 2^63 ms, `int(inf)` raises, and so does `int()` of over 4,300 digits: the
    upstream's max-age cannot crash a call."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    hostile.reset(answer(response(headers=[(b"Cache-Control", b"max-age=" + max_age.encode())])))
    client = client_for(hostile)

    assert (await client.fetch_json("data")).cache == "miss"
    assert (await client.fetch_json("data")).cache == "hit"
    await client.aclose()


async def test_an_etag_that_cannot_be_sent_back_is_not_kept(hostile: HostileUpstream) -> None:
    """An ETag is sent back as If-None-Match: one that is not ASCII would fail every revalidation."""
    hostile.reset(answer(response(headers=[(b"ETag", b'"\xe9t\xe9"'), (b"Cache-Control", b"no-cache")])))
    client = client_for(hostile)

    assert (await client.fetch_json("data")).cache == "miss"
    assert (await client.fetch_json("data")).cache == "miss"
    await client.aclose()


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_cookie_an_upstream_sets_is_never_sent_on_later_calls(hostile: HostileUpstream, transport: str) -> None:
    """An upstream's Set-Cookie answered one end user's call (with their forwarded credentials, say): a cookie jar
    shared by the pool would send it on every later call, whoever made it. Nothing is kept."""
    heads: list[bytes] = []

    def recording(mode: Mode) -> Mode:
        async def record(exchange: Any) -> bool:
            heads.append(exchange.head)
            return await mode(exchange)

        return record

    set_cookie = [(b"Set-Cookie", b"session=alice; Path=/"), (b"Set-Cookie", b"sid=alice; Domain=localhost")]
    hostile.reset(recording(ok()))
    hostile.then(recording(answer(response(OK_BODY, headers=set_cookie))))
    # By name: aiohttp's default jar ignores cookies from IP addresses, so 127.0.0.1 would hide a kept cookie.
    config = replace(client_for(hostile).config, base_url=f"http://localhost:{hostile.port}")
    make = aiohttp_transport if transport == "aiohttp" else httpx_transport
    client = UpstreamClient(config, transport=make(config))

    await client.fetch_json("data")
    await client.fetch_json("data")
    await client.aclose()

    assert len(heads) == 2
    assert b"alice" not in heads[1].lower()
    assert b"cookie" not in heads[1].lower()
