"""config/asgi.py: the lifespan protocol Django ignores (validate at start-up, close pools at shutdown) and the
/demo mount."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from config import asgi
from tests.asgi_scope import http_scope
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


# Signals, sent on the loop (config/handler.py): sync receivers inline and in order, async receivers awaited.


@pytest.fixture
def receivers() -> Any:
    from django.core import signals

    connected: list[tuple[Any, Any]] = []

    def connect(signal_name: str, receiver: Any) -> None:
        signal = getattr(signals, signal_name)
        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))

    yield connect
    for signal, receiver in connected:
        signal.disconnect(receiver)


async def get_health(app: Any = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app or asgi.application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.get("/healthz")


@pytest.mark.parametrize("signal_name", ["request_started", "request_finished"])
async def test_async_request_signal_receivers_are_awaited_and_the_request_is_served(
    receivers: Any, signal_name: str
) -> None:
    calls: list[str] = []
    threads: list[threading.Thread] = []

    async def async_receiver(sender: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0)
        calls.append("async")

    def sync_receiver(sender: Any, **kwargs: Any) -> None:
        threads.append(threading.current_thread())
        calls.append("sync")

    receivers(signal_name, async_receiver)
    receivers(signal_name, sync_receiver)

    response = await get_health()

    assert response.status_code == 200
    assert calls == ["sync", "async"]  # Signal.send's order: sync receivers first, then the async ones
    assert threads == [threading.current_thread()]  # inline, not through sync_to_async


async def test_request_started_receivers_get_the_scope(receivers: Any) -> None:
    scopes: list[dict[str, Any]] = []

    async def receiver(sender: Any, scope: dict[str, Any], **kwargs: Any) -> None:
        scopes.append(scope)

    receivers("request_started", receiver)

    await get_health()

    assert [scope["path"] for scope in scopes] == ["/healthz"]


# The request body limit (settings.MAX_REQUEST_BODY_BYTES), at the ASGI level: the body is never read.


async def call_with_body(scope_headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[list[Any], int]:
    """Serve a POST whose body arrives in `chunks`; returns what the app sent and how many chunks it asked for."""
    asked = 0

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        if asked > len(chunks):  # the body is over: the app listens for a disconnect, which never comes
            await asyncio.Event().wait()
        return {"type": "http.request", "body": chunks[asked - 1], "more_body": asked < len(chunks)}

    sent: list[Any] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope("POST", "/api/products/", headers=scope_headers)
    await asyncio.wait_for(asgi.application(scope, receive, send), timeout=5)
    return sent, asked


def assert_413(sent: list[Any]) -> dict[str, Any]:
    import orjson

    start, body = sent[0], sent[1]
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    assert start["status"] == 413
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert headers["x-request-id"]
    problem: dict[str, Any] = orjson.loads(body["body"])
    assert problem["code"] == "request_body_too_large"
    assert problem["type"] == "urn:tributary:problem:request_body_too_large"
    assert problem["status"] == 413
    return problem


async def test_a_declared_body_over_the_limit_is_refused_before_any_byte_is_read(settings: Any) -> None:
    settings.MAX_REQUEST_BODY_BYTES = 1024

    sent, asked = await call_with_body([(b"content-length", b"314572800")], [])  # 300 MB, never sent

    assert asked == 0
    assert_413(sent)


async def test_a_chunked_body_is_read_only_up_to_the_limit(settings: Any) -> None:
    settings.MAX_REQUEST_BODY_BYTES = 1024
    chunks = [b"x" * 600] * 1000  # 600 kB in all

    sent, asked = await call_with_body([(b"transfer-encoding", b"chunked")], chunks)

    assert asked == 2  # 1,200 bytes: over the limit, and nothing more is read
    assert_413(sent)


async def test_a_body_of_exactly_the_limit_is_served_and_one_byte_more_is_refused(settings: Any) -> None:
    settings.MAX_REQUEST_BODY_BYTES = 1024

    at_limit, asked = await call_with_body([(b"content-length", b"1024")], [b"x" * 1024])
    over_limit, _ = await call_with_body([(b"content-length", b"1025")], [b"x" * 1025])

    assert at_limit[0]["status"] == 405  # the endpoint's own answer to a POST
    assert asked in (1, 2)  # the whole body (then the wait for a disconnect, if the view suspended before answering)
    assert_413(over_limit)
