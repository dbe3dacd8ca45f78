"""UpstreamClient: every way an upstream can answer (or not) becomes the right error, named after the upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.servers import closed_port_url
from upstreams import (
    UnknownUpstream,
    UpstreamBadContentType,
    UpstreamBodyTooLarge,
    UpstreamClient,
    UpstreamConfig,
    UpstreamConnectError,
    UpstreamInvalidJSON,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRegistry,
    UpstreamStatusError,
    UpstreamTimeout,
    aiohttp_transport,
    request_id,
)
from upstreams.client import get_request

CONFIG = UpstreamConfig(name="catalog", base_url="http://catalog.test/v1", timeout=1.0, connect_timeout=0.5)


def client_for(handler: Any, **config: Any) -> UpstreamClient:
    base = {"name": "catalog", "base_url": "http://catalog.test/v1", "timeout": 1.0, "connect_timeout": 0.5}
    return UpstreamClient(UpstreamConfig(**{**base, **config}), transport=httpx.MockTransport(handler))


async def test_get_json_decodes_the_body_and_joins_the_path_to_the_base_url() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 7})

    client = client_for(handler)
    assert await client.get_json("products/7", params={"page": 2, "skip": None}) == {"id": 7}
    await client.aclose()

    assert str(seen[0].url) == "http://catalog.test/v1/products/7?page=2"


async def test_request_id_configured_headers_and_token_are_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    client = client_for(handler, token="s3cret", headers={"X-Api-Key": "k"})
    token = request_id.set("req-123")
    try:
        await client.get_json("x")
    finally:
        request_id.reset(token)
        await client.aclose()

    headers = seen[0].headers
    assert headers["X-Request-ID"] == "req-123"
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["X-Api-Key"] == "k"


def test_token_and_headers_are_not_in_the_configs_repr() -> None:
    config = UpstreamConfig(name="a", base_url="http://a.test", token="s3cret", headers={"X-Api-Key": "k3y"})
    assert "s3cret" not in repr(config)
    assert "k3y" not in repr(config)


@pytest.mark.parametrize(
    ("response", "error", "code"),
    [
        (httpx.Response(404, json={}), UpstreamNotFound, "upstream_not_found"),
        (httpx.Response(500, json={}), UpstreamStatusError, "upstream_status"),
        (httpx.Response(302, headers={"Location": "/elsewhere"}), UpstreamStatusError, "upstream_status"),
        (httpx.Response(200, text="<html>oops</html>", headers={"content-type": "text/html"}),
         UpstreamBadContentType, "upstream_bad_content_type"),
        (httpx.Response(200, content=b'{"broken": ', headers={"content-type": "application/json"}),
         UpstreamInvalidJSON, "upstream_invalid_json"),
    ],
)  # fmt: skip
async def test_unusable_responses_raise_the_matching_error(
    response: httpx.Response, error: type[Exception], code: str
) -> None:
    client = client_for(lambda request: response)
    with pytest.raises(error) as raised:
        await client.get_json("x")
    await client.aclose()

    assert raised.value.upstream == "catalog"  # type: ignore[attr-defined]
    assert raised.value.code == code  # type: ignore[attr-defined]


async def test_status_error_keeps_the_upstream_status() -> None:
    client = client_for(lambda request: httpx.Response(503, json={}))
    with pytest.raises(UpstreamStatusError) as raised:
        await client.get_json("x")
    await client.aclose()
    assert raised.value.status_code == 503


async def test_problem_json_content_type_is_accepted() -> None:
    client = client_for(
        lambda request: httpx.Response(200, content=b"[1]", headers={"content-type": "application/vnd.x+json"})
    )
    assert await client.get_json("x") == [1]
    await client.aclose()


async def test_declared_body_over_the_limit_is_refused_without_reading_it() -> None:
    read = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        read = True
        yield b"x" * 2000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-length": "2000", "content-type": "application/json"}, content=body()
        )

    client = client_for(handler, max_body_bytes=1000)
    with pytest.raises(UpstreamBodyTooLarge) as raised:
        await client.get_json("x")
    await client.aclose()

    assert raised.value.limit == 1000
    assert read is False


async def test_streamed_body_is_cut_off_once_it_passes_the_limit() -> None:
    chunks_sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for _ in range(100):
            chunks_sent += 1
            yield b"x" * 400

    client = client_for(
        lambda request: httpx.Response(200, headers={"content-type": "application/json"}, content=body()),
        max_body_bytes=1000,
    )
    with pytest.raises(UpstreamBodyTooLarge):
        await client.get_json("x")
    await client.aclose()

    assert chunks_sent == 3


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectError("refused"), UpstreamConnectError),
        (httpx.ConnectTimeout("slow connect"), UpstreamConnectError),
        (httpx.ReadTimeout("slow read"), UpstreamTimeout),
        (httpx.RemoteProtocolError("garbage"), UpstreamProtocolError),
        (httpx.ReadError("reset"), UpstreamProtocolError),
        (ConnectionResetError("reset"), UpstreamConnectError),
    ],
)
async def test_transport_errors_are_translated(exc: Exception, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    client = client_for(handler)
    with pytest.raises(error) as raised:
        await client.get_json("x")
    await client.aclose()
    assert raised.value.__cause__ is exc


# Real sockets: timeouts and connection failures are about time and the network stack, which mocks do not enforce.


async def test_refused_connection_is_a_connect_error() -> None:
    config = UpstreamConfig(name="gone", base_url=closed_port_url(), timeout=2, connect_timeout=1)
    client = UpstreamClient(config, transport=aiohttp_transport(config))
    with pytest.raises(UpstreamConnectError) as raised:
        await client.get_json("anything")
    await client.aclose()
    assert raised.value.upstream == "gone"


async def test_slow_upstream_times_out_within_the_calls_budget(demo: Any) -> None:
    demo(faults={"catalog": "timeout"})
    config = UpstreamConfig(name="catalog", base_url=_demo_url(demo, "catalog"), timeout=0.2, connect_timeout=0.2)
    client = UpstreamClient(config, transport=aiohttp_transport(config))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeout):
        await client.get_json("products/1")
    elapsed = loop.time() - started
    await client.aclose()
    assert elapsed < 1.5  # the 0.2 s budget plus generous slack, far below the upstream's hour-long hang


async def test_connection_reset_mid_body_is_a_protocol_error(demo: Any) -> None:
    demo(faults={"catalog": "reset"})
    config = UpstreamConfig(name="catalog", base_url=_demo_url(demo, "catalog"), timeout=2, connect_timeout=1)
    client = UpstreamClient(config, transport=aiohttp_transport(config))
    with pytest.raises(UpstreamProtocolError):
        await client.get_json("products/1")
    await client.aclose()


def _demo_url(demo: Any, name: str) -> str:
    from django.conf import settings

    return str(settings.UPSTREAMS[name]["URL"])


async def test_registry_reuses_one_client_per_upstream_and_closes_them() -> None:
    registry = UpstreamRegistry({"catalog": CONFIG}, transport_factory=lambda c: httpx.MockTransport(lambda r: None))  # type: ignore[arg-type, return-value]
    first = registry.client("catalog")

    assert registry.client("catalog") is first
    assert registry.open_clients() == 1
    await registry.aclose()
    assert first.is_closed
    assert registry.open_clients() == 0
    assert registry.client("catalog") is not first
    await registry.aclose()


async def test_registry_rejects_an_unknown_upstream() -> None:
    registry = UpstreamRegistry({"catalog": CONFIG})
    with pytest.raises(UnknownUpstream, match="nope"):
        registry.client("nope")


# --- The request the client builds: httpx's own, for less -----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://catalog.internal/products/7",
        "https://catalog.internal/v2/products?page=2&page_size=5",
        "http://127.0.0.1:8101/slow_data",
        "https://api.example:8443/a%20b/c",
        "http://[::1]:9000/x",
        "http://bücher.example/stock/SKU-1",  # IDNA
        "http://user:secret@upstream.internal:80/p",  # credentials in the URL, default port spelled out
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"User-Agent": "tributary", "Accept": "application/json", "X-Request-ID": "abc", "traceparent": "00-1-2-01"},
        {"host": "override.example", "Authorization": "Bearer t"},  # a Host of its own: kept, none added
        {"Accept-Language": "fr, en;q=0.5", "X-Empty": ""},
    ],
)
def test_get_request_builds_what_httpx_builds(url: str, headers: dict[str, str]) -> None:
    extensions = {"timeout": {"connect": 1.0, "read": 2.0, "write": 2.0, "pool": 2.0}}
    ours = get_request(httpx.URL(url), headers, extensions)
    httpx_own = httpx.Request("GET", httpx.URL(url), headers=headers, extensions=extensions)

    assert (ours.method, ours.url, ours.extensions) == (httpx_own.method, httpx_own.url, httpx_own.extensions)
    assert ours.headers.raw == httpx_own.headers.raw  # the same names, values and order
    assert ours.content == httpx_own.content == b""
    assert list(ours.stream) == list(httpx_own.stream)


def test_get_request_refuses_what_httpx_refuses() -> None:
    for build in (get_request, lambda url, headers, ext: httpx.Request("GET", url, headers=headers, extensions=ext)):
        with pytest.raises(UnicodeEncodeError):
            build(httpx.URL("http://catalog.internal/"), {"X-Note": "caf\u00e9"}, {})
