"""A served request leaves no reference cycle behind: its objects (the Django request, the DRF view and request, the
response, the handler's tasks) are freed by reference counting as soon as it is answered, not by the cyclic garbage
collector some time later. Under load, what waits for the collector is what makes a worker's peak memory grow
(config/handler.py's disconnect listener, api/onloop.py's `_break_cycles`).

Each test serves requests through the ASGI application with the collector switched off, the way uvicorn calls it
(after the response, `receive()` answers `http.disconnect`), then asks the collector what it would have freed.
"""

from __future__ import annotations

import asyncio
import collections
import gc
from collections.abc import Iterator
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponseBase
from rest_framework.request import Request
from rest_framework.views import APIView

from config import asgi
from tests.asgi_scope import http_scope


async def serve(method: str, path: str) -> int:
    """One request, as uvicorn serves it; returns the status."""
    answered = asyncio.Event()
    sent: list[dict[str, Any]] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    path, _, query = path.partition("?")
    scope = http_scope(method, path, query=query.encode())
    await asgi.application(scope, receive, send)
    status: int = sent[0]["status"]
    return status


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def cyclic_garbage() -> list[Any]:
    """What the cyclic collector finds unreachable now (kept for inspection instead of freed)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()  # now free them


def describe(garbage: list[Any]) -> str:
    counts = collections.Counter(type(o).__module__ + "." + type(o).__qualname__ for o in garbage)
    return ", ".join(f"{n} {name}" for name, n in counts.most_common(15))


def of_a_request(garbage: list[Any]) -> list[Any]:
    """The objects of a request's own graph among `garbage`."""
    kinds = (HttpRequest, Request, APIView, HttpResponseBase)
    return [o for o in garbage if isinstance(o, kinds)]


# Django and DRF only (no upstream call): the view, its checks, the problem responses of the error paths.
NO_UPSTREAM = [
    ("GET", "/healthz", 200),  # an OnLoopAPIView
    ("OPTIONS", "/api/upstreams/", 204),  # an adrf viewset: API-key authentication, permission, rate limit
    ("POST", "/api/upstreams/", 405),  # DRF's exception handling
    ("GET", "/api/products/7/?currency=", 400),  # a validation error (query serializer), before any upstream call
    ("GET", "/nowhere/", 404),  # plain Django
]


@pytest.mark.parametrize(("method", "path", "status"), NO_UPSTREAM)
async def test_a_served_request_leaves_no_cyclic_garbage(
    demo: Any, method: str, path: str, status: int, collector_off: None
) -> None:
    demo()  # configured upstreams, never called by these paths
    assert await serve(method, path) == status  # warm: anything made once (caches, pools) exists now
    cyclic_garbage()

    for _ in range(10):
        assert await serve(method, path) == status

    garbage = cyclic_garbage()
    found, what = len(garbage), describe(garbage)
    del garbage  # a failure's traceback would keep them for the next test to find
    assert found == 0, what


async def test_an_aggregate_leaves_none_of_its_request_to_the_collector(demo: Any, collector_off: None) -> None:
    """With upstream calls: the demo upstreams run in a thread of this process, so only the request's own objects
    are looked for (that thread's garbage, if any, is not this test's business)."""
    demo()
    assert await serve("GET", "/api/multiple-external-data/") == 200
    cyclic_garbage()

    for _ in range(10):
        assert await serve("GET", "/api/multiple-external-data/") == 200

    garbage = cyclic_garbage()
    found, what = len(of_a_request(garbage)), describe(garbage)
    del garbage
    assert found == 0, what


@pytest.mark.parametrize("fault", ["500", "invalid_json"])
async def test_an_upstream_failure_leaves_none_of_its_request_to_the_collector(
    demo: Any, fault: str, collector_off: None
) -> None:
    """The 502's exception went through the view's frames: its traceback is dropped once it is answered
    (api/onloop.py `_release_frames`), so a frame that kept the exception does not keep the request with it."""
    demo(faults={"slow": fault}, slow={"RETRIES": "0", "BREAKER_FAILURES": "1000", "BREAKER_MIN_CALLS": "1000"})
    assert await serve("GET", "/api/external-data/") == 502
    cyclic_garbage()

    for _ in range(10):
        assert await serve("GET", "/api/external-data/") == 502

    garbage = cyclic_garbage()
    found, what = len(of_a_request(garbage)), describe(garbage)
    del garbage
    assert found == 0, what


async def test_the_check_sees_the_cycles_drf_and_adrf_make(
    demo: Any, monkeypatch: pytest.MonkeyPatch, collector_off: None
) -> None:
    """Control: without `_break_cycles`, every viewset request is left to the collector (its view, DRF request,
    Django request and response among ~90 objects), so the tests above would catch a cycle coming back."""
    from api import onloop

    monkeypatch.setattr(onloop, "_break_cycles", lambda view, request: None)
    demo()
    await serve("OPTIONS", "/api/upstreams/")
    cyclic_garbage()

    for _ in range(10):
        await serve("OPTIONS", "/api/upstreams/")

    garbage = cyclic_garbage()
    assert len([o for o in of_a_request(garbage) if isinstance(o, APIView)]) >= 10
    assert len(garbage) >= 10 * 30
