"""Shared fixtures. Every test starts with a fresh upstream registry and leaves no client open (autouse)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from django.core.cache import cache
from django.test import AsyncClient

from api.clients import keys
from tests.hostile_upstream import HostileUpstream, hostile_upstream
from tests.postgres_server import postgres_server
from tests.redis_server import redis_server
from tests.servers import SwappableApp, serve_in_thread
from tests.upstream_double import ScriptedUpstream
from upstreams import (
    UpstreamClient,
    UpstreamRegistry,
    aiohttp_transport,
    close_registry,
    declared,
    get_registry,
    parse_upstreams,
    set_registry,
)
from upstreams.demo import DemoApp, DemoOptions


@pytest.fixture(autouse=True)
async def _fresh_registry() -> AsyncIterator[None]:
    """Every test starts with new clients, closed circuits, an empty response cache and an empty API-key cache."""
    set_registry(None)
    cache.clear()
    keys.reset()
    yield
    keys.reset()
    await close_registry()
    while _installed:
        await _installed.pop().aclose()
    set_registry(None)
    cache.clear()


@pytest.fixture
def api() -> AsyncClient:
    return AsyncClient()


_installed: list[UpstreamRegistry] = []


def install_registry(upstreams: dict[str, dict[str, Any]], transport_factory: Any) -> UpstreamRegistry:
    """Make this the process-wide registry; every one installed is closed when the test ends."""
    registry = UpstreamRegistry(parse_upstreams(upstreams), transport_factory=transport_factory)
    _installed.append(registry)
    set_registry(registry)
    return registry


async def assert_clean(upstream: Any, client: UpstreamClient | None = None) -> None:
    """Nothing outlives the request: on the upstream's side (any test upstream with `in_flight`), in our client
    (by default the registry's client for `slow`), or in the event loop."""
    deadline = time.monotonic() + 5
    while upstream.in_flight:
        assert time.monotonic() < deadline, "the upstream still has a request in flight"
        await asyncio.sleep(0.01)
    client = client or get_registry().client("slow")
    assert client.bulkhead.in_use == 0
    assert client.flights.in_flight() == 0
    assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} == set()


@pytest.fixture
def upstream_mock(settings: Any) -> respx.MockRouter:
    """respx in front of every upstream (base URLs from settings.UPSTREAMS, e.g. http://catalog.upstream.test)."""
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    install_registry(settings.UPSTREAMS, lambda config: httpx.MockTransport(router.async_handler))
    return router


@pytest.fixture(scope="session")
def demo_server() -> Iterator[tuple[str, SwappableApp]]:
    app = SwappableApp(DemoApp(DemoOptions(latency_ms=0)))
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture
def demo(demo_server: tuple[str, SwappableApp], settings: Any) -> Any:
    """Upstreams served over real sockets by the demo app; returns a function to set its options."""
    url, swappable = demo_server

    def configure(*, latency_ms: float = 0, faults: dict[str, str] | None = None, **upstream: Any) -> DemoApp:
        swappable.app = DemoApp(DemoOptions(latency_ms=latency_ms, faults=faults or {}))
        settings.UPSTREAMS = {
            name: {"URL": f"{url}/{name}", "TIMEOUT": "2", "CONNECT_TIMEOUT": "1", **upstream.get(name, {})}
            for name in declared.names()
        }
        install_registry(settings.UPSTREAMS, aiohttp_transport)
        return swappable.app

    return configure


@pytest.fixture(scope="session")
def scripted_server() -> Iterator[tuple[str, ScriptedUpstream]]:
    upstream = ScriptedUpstream()
    with serve_in_thread(upstream) as url:
        yield url, upstream


@pytest.fixture
def scripted(scripted_server: tuple[str, ScriptedUpstream], settings: Any) -> Any:
    """Every upstream served by one scripted, misbehaving server over real sockets; returns a function that
    applies per-upstream settings (e.g. RETRIES="0") and returns the server's script."""
    url, upstream = scripted_server
    upstream.reset()

    def configure(**values: str) -> ScriptedUpstream:
        settings.UPSTREAMS = {
            name: {"URL": f"{url}/{name}", "TIMEOUT": "0.5", "CONNECT_TIMEOUT": "0.2", **values}
            for name in declared.names()
        }
        install_registry(settings.UPSTREAMS, aiohttp_transport)
        return upstream

    return configure


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[HostileUpstream]:
    """A raw-socket upstream that sends whatever bytes a test scripts (tests/hostile_upstream.py)."""
    with hostile_upstream() as upstream:
        yield upstream


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL started for the session (tests/postgres_server.py): a postgres:// URL for its superuser."""
    with postgres_server() as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """A running Redis, emptied for this test."""
    import redis

    with redis.Redis.from_url(redis_server_url) as client:
        client.flushdb()
    return redis_server_url
