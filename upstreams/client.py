"""One upstream's HTTP client: a pooled `httpx.AsyncClient` that fetches JSON and fails only with `UpstreamError`s.

The layers, outermost first, each doing one thing:

    get_json            decode the body (orjson) or raise UpstreamInvalidJSON
    _get_body           the call's total time budget (connect + headers + body), enforced by asyncio
    _send               the HTTP exchange: status, content type, and a body read with a size limit
    map_httpx_errors    httpx/transport exceptions -> the upstream error tree

The transport is injected (`TransportFactory`), so tests can swap in `httpx.MockTransport` or respx. By default it is
httpx-aiohttp's `AiohttpTransport`: httpx's own pool is an order of magnitude slower under concurrency (see
`benchmarks/transports.py` for the measurement that chose it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

from .config import UpstreamConfig
from .context import REQUEST_ID_HEADER, request_id
from .errors import (
    UpstreamBadContentType,
    UpstreamBodyTooLarge,
    UpstreamConnectError,
    UpstreamInvalidJSON,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)

__all__ = ["TransportFactory", "UpstreamClient", "aiohttp_transport", "httpx_transport", "map_httpx_errors"]

TransportFactory = Callable[[UpstreamConfig], httpx.AsyncBaseTransport]
QueryParams = Mapping[str, str | int | float | None]


def aiohttp_transport(config: UpstreamConfig) -> httpx.AsyncBaseTransport:
    """The production transport: aiohttp's connection pool behind httpx's API."""
    limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
    return AiohttpTransport(limits=limits)


def httpx_transport(config: UpstreamConfig) -> httpx.AsyncBaseTransport:
    """httpx's own transport (httpcore): slower under load, but what respx patches by default."""
    limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
    return httpx.AsyncHTTPTransport(limits=limits)


@contextmanager
def map_httpx_errors(upstream: str) -> Iterator[None]:
    """Translate httpx's exceptions (which the transport already produced) into the most specific upstream error."""
    try:
        yield
    except httpx.ConnectTimeout as exc:
        # Not "timed out": httpx-aiohttp also reports refused connections and early disconnects as ConnectTimeout.
        raise UpstreamConnectError(upstream) from exc
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(upstream) from exc
    except httpx.ConnectError as exc:
        raise UpstreamConnectError(upstream) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise UpstreamConnectError(upstream, "The upstream URL is not usable.") from exc
    except httpx.HTTPError as exc:  # ReadError, RemoteProtocolError, WriteError, ...: the exchange broke mid-way
        raise UpstreamProtocolError(upstream) from exc
    except OSError as exc:  # a transport that let a socket error through unmapped
        raise UpstreamConnectError(upstream) from exc


class UpstreamClient:
    """Calls one upstream. Create one per upstream per event loop (see `UpstreamRegistry`), never per request."""

    def __init__(self, config: UpstreamConfig, *, transport: httpx.AsyncBaseTransport) -> None:
        self.config = config
        self.name = config.name
        self._client = httpx.AsyncClient(
            base_url=config.base_url + "/",
            transport=transport,
            headers=config.request_headers(),
            # The total budget is enforced around the whole call in _get_body; these bound each phase.
            timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
            follow_redirects=False,
        )

    async def get_json(self, path: str, *, params: QueryParams | None = None, timeout: float | None = None) -> Any:
        """GET `path` (relative to the base URL) and return the decoded JSON; `timeout` can only shorten the budget."""
        body = await self._get_body(path, params=params, timeout=timeout)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamInvalidJSON(self.name) from None

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def is_closed(self) -> bool:
        return self._client.is_closed

    async def _get_body(self, path: str, *, params: QueryParams | None, timeout: float | None) -> bytes:
        budget = self.config.timeout if timeout is None else min(timeout, self.config.timeout)
        try:
            async with asyncio.timeout(budget):
                return await self._send(path, params=params)
        except TimeoutError:
            raise UpstreamTimeout(self.name) from None

    async def _send(self, path: str, *, params: QueryParams | None) -> bytes:
        headers = {}
        if (rid := request_id.get()) is not None:
            headers[REQUEST_ID_HEADER] = rid
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        with map_httpx_errors(self.name):
            async with self._client.stream("GET", path.lstrip("/"), params=clean_params, headers=headers) as response:
                self._check_status(response)
                self._check_content_type(response)
                return await self._read_limited(response)

    def _check_status(self, response: httpx.Response) -> None:
        if response.status_code == 404:
            raise UpstreamNotFound(self.name)
        if not 200 <= response.status_code < 300:
            raise UpstreamStatusError(self.name, response.status_code)

    def _check_content_type(self, response: httpx.Response) -> None:
        content_type = response.headers.get("content-type")
        if content_type is None:
            return  # no claim either way: let the JSON decoder decide
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise UpstreamBadContentType(self.name, f"The upstream service answered with {media_type!r}, not JSON.")

    async def _read_limited(self, response: httpx.Response) -> bytes:
        """Read the (decoded) body, refusing it as soon as it is known to exceed the limit."""
        limit = self.config.max_body_bytes
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise UpstreamBodyTooLarge(self.name, limit)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise UpstreamBodyTooLarge(self.name, limit)
        return bytes(body)
