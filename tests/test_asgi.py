"""config/asgi.py: the lifespan protocol Django ignores (validate at start-up, close pools at shutdown) and the
/demo mount."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from config import asgi
from upstreams import get_registry, set_registry
from upstreams.demo import DemoApp, DemoOptions


async def run_lifespan(*events: str) -> list[dict[str, Any]]:
    """Drive the app's lifespan with these events; returns what it sent back."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for event in events:
        queue.put_nowait({"type": f"lifespan.{event}"})
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(asgi.application({"type": "lifespan"}, queue.get, send), timeout=5)
    return sent


async def test_shutdown_closes_the_pooled_upstream_clients() -> None:
    sent = await run_lifespan("startup", "shutdown")
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]

    registry = get_registry()
    registry.client("catalog")
    registry.client("reviews")
    assert registry.open_clients() == 2

    await run_lifespan("shutdown")

    assert registry.open_clients() == 0


async def test_startup_fails_with_a_message_on_bad_upstream_configuration(settings: Any) -> None:
    settings.UPSTREAMS = {"catalog": {"URL": "not-a-url"}}
    set_registry(None)

    sent = await run_lifespan("startup")

    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "UPSTREAM_CATALOG_URL='not-a-url'" in sent[0]["message"]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/demo/catalog/products/1", 200), ("/demo/nope", 404), ("/api/products/abc/", 404)],
)
async def test_demo_upstreams_are_mounted_under_demo_when_enabled(
    monkeypatch: pytest.MonkeyPatch, path: str, status: int
) -> None:
    monkeypatch.setattr(asgi, "demo_application", DemoApp(DemoOptions(latency_ms=0)))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi.application), base_url="http://127.0.0.1") as c:
        response = await c.get(path)

    assert response.status_code == status
    if path.startswith("/demo/catalog"):
        assert response.json()["sku"] == "SKU-00001"
    if path.startswith("/api/"):
        assert response.headers["content-type"] == "application/problem+json"  # Django served it, not the demo


async def test_demo_mount_is_absent_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asgi, "demo_application", None)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi.application), base_url="http://127.0.0.1") as c:
        response = await c.get("/demo/catalog/products/1")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
