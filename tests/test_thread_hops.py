"""Zero thread hops per request on the aggregate path: no `sync_to_async`, no executor submission, from the ASGI
entry point to the last byte (middleware, DRF's checks, rendering, signals, response close, error logging)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from asgiref.sync import SyncToAsync
from django.core.handlers.asgi import ASGIHandler

from config import asgi


class HopCounter:
    def __init__(self) -> None:
        self.hops: list[str] = []


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> HopCounter:
    counter = HopCounter()
    original_call = SyncToAsync.__call__
    original_executor = asyncio.BaseEventLoop.run_in_executor

    async def counting_call(self: SyncToAsync, *args: Any, **kwargs: Any) -> Any:  # type: ignore[type-arg]
        counter.hops.append(f"sync_to_async({getattr(self.func, '__qualname__', type(self.func).__name__)})")
        return await original_call(self, *args, **kwargs)

    def counting_executor(self: asyncio.BaseEventLoop, executor: Any, func: Any, *args: Any) -> Any:
        counter.hops.append(f"run_in_executor({getattr(func, '__qualname__', type(func).__name__)})")
        return original_executor(self, executor, func, *args)

    monkeypatch.setattr(SyncToAsync, "__call__", counting_call)
    monkeypatch.setattr(asyncio.BaseEventLoop, "run_in_executor", counting_executor)
    return counter


async def get(app: Any, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        return await client.get(path)


PATHS = [
    ("/api/multiple-external-data/", 200),
    ("/api/products/7/?currency=GBP", 200),
    ("/api/products/?page=2&page_size=5", 200),
    ("/api/products/99999/", 404),
    ("/api/products/7/?currency=nope", 400),
    ("/healthz", 200),
]


@pytest.mark.parametrize(("path", "status"), PATHS)
async def test_no_thread_hop_from_request_to_response(demo: Any, hops: HopCounter, path: str, status: int) -> None:
    demo()
    assert (await get(asgi.application, path)).status_code == status  # warm: pools and clients exist now
    hops.hops.clear()

    for _ in range(3):
        assert (await get(asgi.application, path)).status_code == status

    assert hops.hops == []


async def test_upstream_failure_path_has_no_thread_hop_either(demo: Any, hops: HopCounter) -> None:
    demo(faults={"slow": "500"}, slow={"RETRIES": "0"})
    await get(asgi.application, "/api/external-data/")
    hops.hops.clear()

    assert (await get(asgi.application, "/api/external-data/")).status_code == 502
    assert hops.hops == []


async def test_the_counter_sees_the_hops_of_djangos_own_handler(demo: Any, hops: HopCounter) -> None:
    """The same request through stock Django: proof that the counter would catch a hop."""
    demo()
    stock = ASGIHandler()
    await get(stock, "/api/multiple-external-data/")
    hops.hops.clear()

    assert (await get(stock, "/api/multiple-external-data/")).status_code == 200
    assert len(hops.hops) >= 2  # request_started receivers and response.close, at least


async def test_async_authentication_permission_and_throttle_are_awaited_without_a_thread_hop(
    hops: HopCounter, settings: Any
) -> None:
    from tests.api import onloop_views

    settings.ROOT_URLCONF = onloop_views.__name__
    path, credentials = "/everything-async/", {"Authorization": "Token alice"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi.application), base_url="http://127.0.0.1"
    ) as client:
        assert (await client.get(path, headers=credentials)).status_code == 200  # warm
        hops.hops.clear()
        onloop_views.CALLS.clear()
        onloop_views.AsyncThrottleAfterOne.seen = 0

        response = await client.get(path, headers=credentials)

    assert response.json() == {"user": "alice", "auth": "token"}
    assert onloop_views.CALLS == ["AsyncToken", "AsyncIsAuthenticated", "AsyncAllowAll", "AsyncThrottleAfterOne"]
    assert hops.hops == []


async def test_a_refused_request_body_costs_no_thread_hop(hops: HopCounter, settings: Any) -> None:
    settings.MAX_REQUEST_BODY_BYTES = 1024
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi.application), base_url="http://127.0.0.1"
    ) as client:
        await client.post("/healthz", content=b"x" * 2048)
        hops.hops.clear()

        response = await client.post("/healthz", content=b"x" * 2048)

    assert response.status_code == 413
    assert hops.hops == []
