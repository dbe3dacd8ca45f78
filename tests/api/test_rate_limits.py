"""Per-client rate limits (api/clients/ratelimit.py), through the real ASGI application: the 429 problem, its
`Retry-After` and the draft's RateLimit fields, per-client and per-IP budgets, both backends (a real redis-server),
the fallback when Redis dies, no thread hop, and the schema. Two processes sharing Redis:
tests/test_rate_limit_processes.py.

Callers are made by a test-only authenticator (`X-Test-Client: <id>[:<rate_limit>]` -> a `Caller`): the throttle's
contract is `request.auth`, whoever sets it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from asgiref.sync import sync_to_async
from rest_framework.authentication import BaseAuthentication
from rest_framework.settings import api_settings

from api.clients import ratelimit
from api.clients.identity import Caller
from api.clients.keys import create_key
from api.clients.models import Client
from api.views import TributaryViewSet
from config import asgi
from tests.api.helpers import assert_problem
from tests.redis_server import redis_server
from tests.test_thread_hops import HopCounter, hops

assert hops  # a fixture, imported: counts sync_to_async and executor hops

LIMITED = "/api/upstreams/"  # limited, and calls no upstream
SCHEMA = Path(__file__).resolve().parents[2] / "openapi" / "schema.yaml"


class TestClientAuthentication(BaseAuthentication):
    """`X-Test-Client: 7` is client 7 on the default limit; `X-Test-Client: 7:2` has its own limit of 2."""

    async def authenticate(self, request: Any) -> tuple[Caller, Caller] | None:  # type: ignore[override]
        raw = request._request.headers.get("X-Test-Client")
        if raw is None:
            return None
        client_id, _, limit = raw.partition(":")
        caller = Caller(
            client_id=int(client_id),
            client_name=f"client-{client_id}",
            key_id=int(client_id),
            key_prefix="testtest",
            rate_limit=int(limit) if limit else None,
        )
        return caller, caller


@pytest.fixture(autouse=True)
async def _limits(settings: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    # The test's callers first; without X-Test-Client, the real API keys.
    real = tuple(api_settings.DEFAULT_AUTHENTICATION_CLASSES)
    monkeypatch.setattr(TributaryViewSet, "authentication_classes", (TestClientAuthentication, *real))
    monkeypatch.setattr(TributaryViewSet, "permission_classes", ())
    settings.RATE_LIMIT = 3
    settings.RATE_LIMIT_ANONYMOUS = 2
    settings.RATE_LIMIT_PERIOD = 60
    settings.REDIS_URL = None
    ratelimit.reset()
    yield
    await ratelimit.aclose()
    ratelimit.reset()


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The per-worker limiter's clock, in microseconds, moved by the test."""
    now = [1_000_000_000]
    monkeypatch.setattr(ratelimit, "_monotonic_us", lambda: now[0])
    return now


async def get(
    path: str = LIMITED, *, ip: str = "127.0.0.1", client: str | None = None, key: str | None = None
) -> httpx.Response:
    transport = httpx.ASGITransport(app=asgi.application, client=(ip, 5000))
    headers = {} if client is None else {"X-Test-Client": client}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        return await http.get(path, headers=headers)


async def statuses(n: int, **kwargs: Any) -> list[int]:
    return [(await get(**kwargs)).status_code for _ in range(n)]


# --- The 429 and the fields -----------------------------------------------------------------------------------------


async def test_over_the_limit_is_a_429_problem_with_retry_after_and_the_ratelimit_fields(
    frozen_clock: list[int],
) -> None:
    admitted = [await get(client="7") for _ in range(3)]
    refused = await get(client="7")

    assert [r.status_code for r in admitted] == [200, 200, 200]
    # 3 per 60 s: a request is earned back every 20 s, so each admitted response says "no more than r within 20 s".
    assert [r.headers["RateLimit"] for r in admitted] == [f'"default";r={r};t=20' for r in (2, 1, 0)]
    assert {r.headers["RateLimit-Policy"] for r in admitted} == {'"default";q=3;w=60'}
    body = assert_problem(refused, 429, "rate_limited")
    assert body["detail"] == "Too many requests for this caller's rate limit. Retry in 20 seconds."
    assert refused.headers["Retry-After"] == "20"
    assert refused.headers["RateLimit"] == '"default";r=0;t=20'
    assert refused.headers["RateLimit-Policy"] == '"default";q=3;w=60'


async def test_retry_after_is_rounded_up_and_is_when_a_request_is_admitted_again(frozen_clock: list[int]) -> None:
    assert await statuses(3, client="7") == [200, 200, 200]
    frozen_clock[0] += 5_500_000  # 14.5 s before the next request is earned back

    refused = await get(client="7")
    assert refused.headers["Retry-After"] == "15"
    frozen_clock[0] += 14_499_999
    assert (await get(client="7")).status_code == 429  # a microsecond early
    frozen_clock[0] += 1

    admitted = await get(client="7")
    assert admitted.status_code == 200
    assert admitted.headers["RateLimit"] == '"default";r=0;t=20'
    assert (await get(client="7")).status_code == 429  # one earned back, one spent: GCRA, not a fixed window


async def test_a_refused_request_spends_nothing(frozen_clock: list[int]) -> None:
    assert await statuses(6, client="7") == [200, 200, 200, 429, 429, 429]
    frozen_clock[0] += 20_000_000

    assert await statuses(2, client="7") == [200, 429]


async def test_clients_do_not_share_budgets() -> None:
    assert await statuses(4, client="7") == [200, 200, 200, 429]

    assert await statuses(4, client="8") == [200, 200, 200, 429]
    assert await statuses(1) == [200]  # anonymous callers from the same address have their own budget


async def test_a_clients_own_limit_overrides_the_default() -> None:
    refused = await get(client="9:1")
    assert refused.headers["RateLimit-Policy"] == '"client";q=1;w=60'
    assert (await get(client="9:1")).status_code == 429

    assert await statuses(4, client="10:5") == [200, 200, 200, 200]  # above the default of 3


@pytest.mark.django_db(transaction=True)
async def test_with_real_api_keys_the_clients_limit_comes_from_the_database() -> None:
    def make(name: str, rate_limit: int | None) -> str:
        client = Client.objects.create(name=name, rate_limit=rate_limit)
        return create_key(client, name="test").key

    own, default = await sync_to_async(make)("own-limit", 2), await sync_to_async(make)("default-limit", None)

    assert [(await get(key=own)).status_code for _ in range(3)] == [200, 200, 429]
    refused = await get(key=own)
    assert_problem(refused, 429, "rate_limited")
    assert refused.headers["RateLimit-Policy"] == '"client";q=2;w=60'
    assert [(await get(key=default)).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert (await get(key=default)).headers["RateLimit-Policy"] == '"default";q=3;w=60'


async def test_a_clients_limit_beyond_what_the_limiter_counts_is_served() -> None:
    responses = [await get(client="12:999999999999") for _ in range(3)]

    assert {r.status_code for r in responses} == {200}
    assert responses[0].headers["RateLimit-Policy"] == '"client";q=60000000;w=60'


async def test_a_clients_limit_of_zero_is_no_limit() -> None:
    responses = [await get(client="11:0") for _ in range(10)]

    assert {r.status_code for r in responses} == {200}
    assert not any("RateLimit" in r.headers for r in responses)


async def test_anonymous_callers_are_limited_per_ip_and_an_ipv6_caller_per_64() -> None:
    assert await statuses(3, ip="192.0.2.1") == [200, 200, 429]
    assert (await get(ip="192.0.2.1")).headers["RateLimit-Policy"] == '"anonymous";q=2;w=60'
    assert await statuses(3, ip="192.0.2.2") == [200, 200, 429]

    assert await statuses(1, ip="2001:db8:0:1::1") == [200]
    assert await statuses(2, ip="2001:db8:0:1:ffff::9") == [200, 429]  # same /64
    assert await statuses(1, ip="2001:db8:0:2::1") == [200]  # the next /64


async def test_a_limit_of_zero_turns_the_limiter_off(settings: Any) -> None:
    settings.RATE_LIMIT = settings.RATE_LIMIT_ANONYMOUS = 0

    responses = [await get(client=client) for client in ("7", None) for _ in range(5)]

    assert {r.status_code for r in responses} == {200}
    assert not any("RateLimit" in r.headers for r in responses)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/api/schema/", "/api/docs/", "/api/redoc/"])
async def test_probes_and_docs_are_not_limited(settings: Any, path: str) -> None:
    settings.RATE_LIMIT_ANONYMOUS = 1

    responses = [await get(path) for _ in range(4)]

    assert {r.status_code for r in responses} == {200}
    assert not any("RateLimit" in r.headers for r in responses)


async def test_the_fields_come_with_error_responses_after_the_check_too() -> None:
    response = await get("/api/products/7/?currency=nope")

    assert_problem(response, 400, "invalid_request")
    assert response.headers["RateLimit"] == '"anonymous";r=1;t=30'


# --- The per-worker limiter's memory ---------------------------------------------------------------------------------


def test_the_per_worker_limiter_stays_bounded_and_drops_idle_callers_first() -> None:
    memory = ratelimit.MemoryLimiter(max_keys=100)
    slow = ratelimit.Policy("default", 1, 3600)  # a caller stays "active" for an hour after one request
    fast = ratelimit.Policy("default", 1_000_000, 1)  # idle a microsecond later

    memory.hit_now("active", slow)
    for n in range(10_000):
        memory.hit_now(f"ip:{n}", fast)
        assert len(memory) <= 100

    assert not memory.hit_now("active", slow).allowed  # idle callers went first: this one's debt was kept
    for n in range(10_000):
        memory.hit_now(f"ip:{n}", slow)  # every caller active: the least recently used go
        assert len(memory) <= 100


def test_a_burst_of_exactly_the_limit_is_admitted_whatever_the_rounding(frozen_clock: list[int]) -> None:
    memory = ratelimit.MemoryLimiter()
    for limit, period in [(7, 60), (600, 60), (999_999, 1), (1, 1), (3, 86_400)]:
        policy = ratelimit.Policy("default", limit, period)
        decisions = [memory.hit_now(f"{limit}/{period}", policy) for _ in range(limit + 1)]
        assert sum(d.allowed for d in decisions) == limit
        assert decisions[-2].remaining == 0


# --- Redis -----------------------------------------------------------------------------------------------------------


async def test_with_redis_every_worker_shares_one_budget(settings: Any, redis_url: str) -> None:
    settings.REDIS_URL = redis_url
    assert await statuses(2, client="7") == [200, 200]
    await ratelimit.aclose()
    ratelimit.reset()  # another worker: a new limiter, nothing in its memory

    last = await get(client="7")
    refused = await get(client="7")

    assert last.status_code == 200
    assert last.headers["RateLimit"].startswith('"default";r=0;t=')
    assert_problem(refused, 429, "rate_limited")
    with redis.Redis.from_url(redis_url) as client:
        assert client.exists("tributary:ratelimit:c:7")
        assert 0 < client.pttl("tributary:ratelimit:c:7") <= 60_000  # the key expires once idle


async def test_with_redis_the_429_is_the_same_problem(settings: Any, redis_url: str) -> None:
    settings.REDIS_URL = redis_url
    settings.RATE_LIMIT_PERIOD = 3600  # 1200 s per request: the test's own duration cannot earn one back

    assert await statuses(3, client="7") == [200, 200, 200]
    refused = await get(client="7")

    assert_problem(refused, 429, "rate_limited")
    assert 1190 <= int(refused.headers["Retry-After"]) <= 1200
    assert refused.headers["RateLimit"] == f'"default";r=0;t={refused.headers["Retry-After"]}'
    assert refused.headers["RateLimit-Policy"] == '"default";q=3;w=3600'
    assert await statuses(2, client="8:2") == [200, 200]  # budgets per client in Redis too
    assert await statuses(3, ip="192.0.2.1") == [200, 200, 429]


async def test_the_script_is_loaded_again_when_redis_forgets_it(settings: Any, redis_url: str) -> None:
    settings.REDIS_URL = redis_url
    assert await statuses(1, client="7") == [200]
    with redis.Redis.from_url(redis_url) as client:
        client.script_flush()

    assert await statuses(3, client="7") == [200, 200, 429]


async def test_a_redis_error_is_no_500_either(settings: Any, redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    settings.REDIS_URL = redis_url
    with redis.Redis.from_url(redis_url) as client:
        client.rpush("tributary:ratelimit:c:7", "not a time")  # the script's GET fails: WRONGTYPE

    with caplog.at_level(logging.WARNING, logger="tributary.ratelimit"):
        assert await statuses(4, client="7") == [200, 200, 200, 429]  # this worker's own limit

    assert [r.getMessage().split(":")[0] for r in caplog.records if r.name == "tributary.ratelimit"] == [
        "Redis failed (ResponseError"
    ]


@pytest.fixture
def own_redis() -> Iterator[tuple[str, Any]]:
    """A redis-server of this test's own, and a function that kills it."""
    server = redis_server()
    url = server.__enter__()
    stopped = []

    def kill() -> None:
        if not stopped:
            stopped.append(True)
            server.__exit__(None, None, None)

    yield url, kill
    kill()


async def test_when_redis_dies_the_per_worker_limit_takes_over_and_says_so_once(
    settings: Any, own_redis: tuple[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url, kill = own_redis
    settings.REDIS_URL = url
    monkeypatch.setattr(ratelimit, "REDIS_RETRY_SECONDS", 0.0)  # try Redis on every request: still one log line
    assert await statuses(2, client="7") == [200, 200]

    kill()
    with caplog.at_level(logging.WARNING, logger="tributary.ratelimit"):
        after = await statuses(5, client="7")

    assert after == [200, 200, 200, 429, 429]  # this worker's own budget of 3, from nothing: never a 500
    warnings = [r for r in caplog.records if r.name == "tributary.ratelimit"]
    assert len(warnings) == 1
    assert "rate limits are enforced per worker" in warnings[0].getMessage()


async def test_an_unreachable_redis_is_tried_again_after_a_second_not_per_request(
    settings: Any, own_redis: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, kill = own_redis
    settings.REDIS_URL = url
    kill()
    attempts = []
    original = ratelimit.RedisLimiter._script

    def counting(self: ratelimit.RedisLimiter) -> Any:
        attempts.append(1)
        return original(self)

    monkeypatch.setattr(ratelimit.RedisLimiter, "_script", counting)

    assert await statuses(5, client="7:100") == [200] * 5
    assert len(attempts) == 1


async def test_the_lifespan_shutdown_closes_the_limiters_redis_connections(settings: Any, redis_url: str) -> None:
    settings.REDIS_URL = redis_url
    assert (await get(client="7")).status_code == 200
    with redis.Redis.from_url(redis_url) as admin:
        ours = {c["id"] for c in admin.client_list()} - {str(admin.client_id())}
        assert ours  # the limiter's connection
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "lifespan.shutdown"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await asgi.application({"type": "lifespan"}, receive, send)

        assert sent == [{"type": "lifespan.shutdown.complete"}]
        for _ in range(100):  # the server notices a closed connection when it reads from it: wait for that
            if not ours & {c["id"] for c in admin.client_list()}:
                break
            await asyncio.sleep(0.05)
        assert not ours & {c["id"] for c in admin.client_list()}


# --- No thread hop ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_the_limiter_costs_no_thread_hop(
    settings: Any,
    hops: HopCounter,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    if backend == "redis":
        settings.REDIS_URL = request.getfixturevalue("redis_url")
    settings.RATE_LIMIT = 1000
    await get(client="7")  # warm: the Redis connection and the script exist now
    await get(ip="192.0.2.1")
    hops.hops.clear()

    responses = [await get(client="7"), await get(ip="192.0.2.1"), await get(client="8:1"), await get(client="8:1")]

    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert all("RateLimit" in r.headers for r in responses)
    assert hops.hops == []


# --- The schema ------------------------------------------------------------------------------------------------------


def test_every_limited_operation_documents_the_429_and_the_fields() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    operations = {
        operation["operationId"]: operation
        for item in schema["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    unlimited = {"get_health", "get_readiness"}

    assert unlimited < set(operations)
    for operation_id, operation in operations.items():
        responses = operation["responses"]
        if operation_id in unlimited:
            assert "429" not in responses
            assert not any("RateLimit" in r.get("headers", {}) for r in responses.values())
            continue
        too_many = responses["429"]
        assert too_many["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
        assert {"Retry-After", "RateLimit", "RateLimit-Policy", "X-Request-ID"} <= set(too_many["headers"])
        success = next(status for status in responses if status.startswith("2"))
        assert {"RateLimit", "RateLimit-Policy"} <= set(responses[success]["headers"])
        for refused_before_the_check in ("401", "403", "406", "413"):
            assert "RateLimit" not in responses.get(refused_before_the_check, {}).get("headers", {})
    assert "rate_limited" in schema["components"]["schemas"]["ProblemCode"]["enum"]


async def test_a_live_429_matches_the_published_schema() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    documented = schema["paths"][LIMITED]["get"]["responses"]["429"]
    await statuses(2)

    refused = await get()

    assert refused.status_code == 429
    assert all(name in refused.headers for name in documented["headers"])
    assert re.fullmatch(r'"anonymous";r=0;t=\d+', refused.headers["RateLimit"])
    assert re.fullmatch(r"\d+", refused.headers["Retry-After"])
