"""End-user headers forwarded to upstreams (`FORWARD_HEADERS`), and no cross-user leaks through the cache,
coalescing or stale-if-error: the upstream here answers with whoever its forwarded Authorization names."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.core.cache import cache as django_cache
from django.utils.datastructures import CaseInsensitiveMapping

from upstreams import ConfigError, UpstreamClient, incoming_headers, parse_upstreams


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    django_cache.clear()
    yield
    django_cache.clear()


def client(handler: Any, **settings: str) -> UpstreamClient:
    config = parse_upstreams({"up": {"URL": "http://up.test", "RETRY_BACKOFF": "0", **settings}})["up"]
    return UpstreamClient(config, transport=httpx.MockTransport(handler))


async def as_user(headers: dict[str, str], call: Any) -> Any:
    """Run `call` with these incoming request headers, as RequestContextMiddleware sets them (`request.headers` is a
    case-insensitive mapping too)."""
    token = incoming_headers.set(CaseInsensitiveMapping(headers))
    try:
        return await call()
    finally:
        incoming_headers.reset(token)


# --- Configuration -------------------------------------------------------------------------------------------------


def test_forward_headers_are_parsed_and_none_are_forwarded_by_default() -> None:
    configs = parse_upstreams(
        {
            "a": {"URL": "http://a", "FORWARD_HEADERS": " Authorization, accept-language,Authorization "},
            "b": {"URL": "http://b"},
        }
    )
    assert configs["a"].forward_headers == ("Authorization", "accept-language")
    assert configs["b"].forward_headers == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Bad Name", "'Bad Name' is not a valid header name"),
        ("Connection", "Connection is never forwarded"),
        ("keep-alive", "keep-alive is never forwarded"),
        ("Proxy-Authorization", "Proxy-Authorization is never forwarded"),
        ("TE", "TE is never forwarded"),
        ("Trailer", "Trailer is never forwarded"),
        ("Transfer-Encoding", "Transfer-Encoding is never forwarded"),
        ("Upgrade", "Upgrade is never forwarded"),
        ("Host", "Host is never forwarded"),
        ("Content-Length", "Content-Length is never forwarded"),
        ("X-API-Key", "X-API-Key is never forwarded"),
        ("Accept-Encoding", "Accept-Encoding is already set on every call"),
    ],
)
def test_unforwardable_headers_are_configuration_problems(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_upstreams({"catalog": {"URL": "http://c", "FORWARD_HEADERS": f"Accept-Language,{value}"}})
    assert any(message in p and p.startswith("UPSTREAM_CATALOG_FORWARD_HEADERS") for p in raised.value.problems)
    assert len(raised.value.problems) == 1


def test_forwarding_a_header_the_token_sets_is_a_problem() -> None:
    with pytest.raises(ConfigError, match="Authorization is already set on every call"):
        parse_upstreams({"c": {"URL": "http://c", "TOKEN": "t", "FORWARD_HEADERS": "Authorization"}})


# --- Forwarding ----------------------------------------------------------------------------------------------------


async def test_only_allowlisted_headers_reach_the_upstream() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    user = {"Authorization": "Bearer alice", "Accept-Language": "fr", "Cookie": "s=1", "X-Api-Key": "ours"}
    forwarding = client(handler, FORWARD_HEADERS="authorization")
    plain = client(handler)
    await as_user(user, lambda: forwarding.get_json("x"))
    await as_user(user, lambda: plain.get_json("x"))
    await forwarding.aclose()
    await plain.aclose()

    assert seen[0].headers["Authorization"] == "Bearer alice"
    for request in seen:
        assert "accept-language" not in request.headers
        assert "cookie" not in request.headers
        assert "x-api-key" not in request.headers
    assert "authorization" not in seen[1].headers  # nothing is forwarded by default


# --- No cross-user leaks -------------------------------------------------------------------------------------------


def echo_user(cache_control: str, *, vary: str | None = None) -> Any:
    calls = itertools.count()

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)
        headers = {"Cache-Control": cache_control, **({"Vary": vary} if vary else {})}
        body = {"user": request.headers.get("authorization"), "lang": request.headers.get("accept-language")}
        return httpx.Response(200, json={**body, "call": next(calls)}, headers=headers)

    return handler


@pytest.mark.parametrize("backend", ["per-process", "redis"])
async def test_two_users_hammering_the_same_paths_never_get_each_others_data(
    backend: str, request: pytest.FixtureRequest, settings: Any
) -> None:
    """Cache (fresh hits), coalescing (shared flights) and stale-if-error (every third upstream call fails) all on;
    with Redis, as deployed: two workers (two clients) share one real redis-server's cache, each user's turns
    alternating between them."""
    if backend == "redis":
        location = request.getfixturevalue("redis_url")
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": location}}
    calls = itertools.count()
    outcomes: dict[str, set[str]] = {"alice": set(), "bob": set()}

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)
        if next(calls) % 3 == 2:
            return httpx.Response(503, json={})
        path = request.url.path
        cache_control = {"/fresh": "public, max-age=60", "/stale": "public, max-age=0", "/mine": "private"}[path]
        user = request.headers.get("authorization")
        return httpx.Response(200, json={"user": user}, headers={"Cache-Control": cache_control})

    workers = [
        client(handler, FORWARD_HEADERS="Authorization", STALE_IF_ERROR="600", RETRIES="0")
        for _ in range(2 if backend == "redis" else 1)
    ]

    async def hammer(user: str) -> None:
        async def one(path: str, upstream: UpstreamClient) -> None:
            try:
                fetched = await upstream.fetch_json(path)
            except Exception:  # noqa: BLE001 - a failure with nothing stale to fall back on: no data, no leak
                outcomes[user].add("error")
                return
            assert fetched.payload["user"] == f"Bearer {user}", (user, path, fetched)
            outcomes[user].add(fetched.cache)

        for turn in range(30):  # each turn on the next worker: concurrent copies of a call can share a flight
            upstream = workers[turn % len(workers)]
            await asyncio.gather(*(one(path, upstream) for path in ("/fresh", "/stale", "/mine") for _ in range(3)))

    await asyncio.gather(
        as_user({"Authorization": "Bearer alice"}, lambda: hammer("alice")),
        as_user({"Authorization": "Bearer bob"}, lambda: hammer("bob")),
    )
    for upstream in workers:
        await upstream.aclose()

    for user in ("alice", "bob"):  # every sharing path was exercised, for both users
        assert {"hit", "shared", "stale", "miss"} <= outcomes[user], outcomes


async def test_same_forwarded_values_share_and_different_ones_do_not() -> None:
    upstream = client(echo_user("public, max-age=60"), FORWARD_HEADERS="Authorization")
    first = await as_user({"Authorization": "Bearer alice"}, lambda: upstream.fetch_json("x"))
    again = await as_user({"authorization": "Bearer alice"}, lambda: upstream.fetch_json("x"))
    other = await as_user({"Authorization": "Bearer bob"}, lambda: upstream.fetch_json("x"))
    await upstream.aclose()
    assert (first.cache, again.cache, again.payload) == ("miss", "hit", first.payload)
    assert (other.cache, other.payload["user"]) == ("miss", "Bearer bob")


@pytest.mark.parametrize("cache_control", ["private, max-age=60", "no-store", "max-age=60", ""])
async def test_forwarded_responses_not_marked_for_shared_caches_are_never_stored(cache_control: str) -> None:
    upstream = client(echo_user(cache_control), FORWARD_HEADERS="Authorization", CACHE_TTL="60", STALE_IF_ERROR="60")
    results = [await as_user({"Authorization": "Bearer alice"}, lambda: upstream.fetch_json("x")) for _ in range(2)]
    await upstream.aclose()
    assert [r.cache for r in results] == ["miss", "miss"]
    assert [r.payload["call"] for r in results] == [0, 1]


@pytest.mark.parametrize("cache_control", ["public", "s-maxage=60"])
async def test_forwarded_responses_marked_public_are_stored(cache_control: str) -> None:
    upstream = client(echo_user(cache_control), FORWARD_HEADERS="Authorization", CACHE_TTL="60")
    results = [await as_user({"Authorization": "Bearer alice"}, lambda: upstream.fetch_json("x")) for _ in range(2)]
    await upstream.aclose()
    assert [r.cache for r in results] == ["miss", "hit"]


@pytest.mark.parametrize("vary", ["*", "Accept, *", "X-Request-ID"])
async def test_vary_on_everything_or_a_per_call_header_is_never_stored(vary: str) -> None:
    upstream = client(echo_user("public, max-age=60", vary=vary))
    results = [await upstream.fetch_json("x") for _ in range(2)]
    await upstream.aclose()
    assert [r.cache for r in results] == ["miss", "miss"]


async def test_vary_on_a_forwarded_header_keeps_one_copy_per_value() -> None:
    upstream = client(echo_user("public, max-age=60", vary="Accept-Language"), FORWARD_HEADERS="Accept-Language")
    fr = await as_user({"Accept-Language": "fr"}, lambda: upstream.fetch_json("x"))
    de = await as_user({"Accept-Language": "de"}, lambda: upstream.fetch_json("x"))
    fr_again = await as_user({"Accept-Language": "fr"}, lambda: upstream.fetch_json("x"))
    await upstream.aclose()
    assert (fr.payload["lang"], de.payload["lang"], fr_again.payload["lang"]) == ("fr", "de", "fr")
    assert fr_again.cache == "hit"
