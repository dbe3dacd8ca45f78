"""The production transport: httpx-aiohttp's `AiohttpTransport` over an aiohttp pool that never reuses a connection
carrying bytes nobody asked for.

aiohttp pools a kept-alive connection as soon as a response's body ends, and keeps parsing whatever arrives on it
afterwards: a second response written by the upstream after the first (at once, or later while the connection sits
idle in the pool) is queued on the connection and handed to the *next* request sent on it, which then receives a
response meant for nobody (and may cache it). Found in aiohttp 3.14.5 (`client_proto.ResponseHandler`,
`connector.BaseConnector._release`/`_get`). The two classes here close the gap, and `tests/upstreams/
test_hostile_upstream.py` pins it over raw sockets (both a second response in the same write and one sent later):

- `GuardedResponseHandler` is idle from the moment its connection is released to the pool until the next request
  sets up its response parser. Bytes that arrive while idle close the connection instead of being parsed; and when
  the release happened in the middle of parsing one read (the end of a body and more bytes after it), a connection
  left holding a parsed message (or a parse error) closes too. A message cut short at the end of such a read is
  dropped with the old parser when the next request sets up its own; the rest of it, arriving while idle, closes
  the connection.
- `GuardedConnector` marks a protocol idle when aiohttp releases it, and builds `GuardedResponseHandler`s.

Both override private aiohttp methods (`_release`, `_factory`, `data_received`, `set_response_params`): the pins
above fail if an aiohttp upgrade changes them.

`GuardedAiohttpTransport` replaces `AiohttpTransport.handle_async_request` (httpx-aiohttp 0.2.0) for one reason:
it encoded the reason phrase after opening the aiohttp response, so a status line with a reason that is not UTF-8
raised `UnicodeEncodeError` and leaked the response's connection (never pooled, never closed: a hostile upstream
could drain the pool one call at a time). Ours passes no reason phrase on (nothing reads it) and releases the
response if building the httpx one fails. It sends what the original sends (pinned by the hostile-upstream tests
and every test that calls an upstream over a real socket: fault injection, soak, end-to-end).

`GuardedAiohttpTransport.get` is the same exchange without httpx's objects, for `UpstreamClient`'s hot path: a GET
with no body, its headers given as httpx would hand them to aiohttp (lower-cased names, `host` first), the aiohttp
response returned as it is. Building an `httpx.Request`, wrapping the answer in an `httpx.Response` and reading it
through httpx's stream cost ~130 µs of CPU per call, more than aiohttp's own work (`benchmarks/results/`); the wire
bytes, the timeouts and the exceptions (`as_httpx_error`: httpx-aiohttp's own mapping) are those of
`handle_async_request`, pinned by tests/upstreams/test_direct_exchange.py over a raw socket.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
from aiohttp.client_proto import ResponseHandler
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

from .config import UpstreamConfig
from .errors import UpstreamConnectError, UpstreamError, UpstreamProtocolError, UpstreamTimeout

__all__ = [
    "GuardedAiohttpTransport",
    "GuardedConnector",
    "GuardedResponseHandler",
    "aiohttp_transport",
    "as_httpx_error",
    "translate_aiohttp_cause",
]


class GuardedResponseHandler(ResponseHandler):
    """aiohttp's client protocol, closing its connection on bytes that no pending request asked for."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        # A new connection is idle until its first request's response parser is set: a server speaking first is
        # as unsolicited as one speaking late.
        self.idle = True

    def set_response_params(self, **kwargs: Any) -> None:
        self.idle = False
        super().set_response_params(**kwargs)

    def data_received(self, data: bytes) -> None:
        if self.idle and data:
            self.close()  # nothing was asked: whatever this is, the connection can no longer be trusted
            return
        super().data_received(data)
        if self.idle and self.should_close:
            # Released to the pool during this read (the body ended in it) and the rest of the read left a parsed
            # message or a half-read one behind: the pool must not hand this connection to another request.
            self.close()


class GuardedConnector(aiohttp.TCPConnector):
    """aiohttp's TCP connector, with `GuardedResponseHandler` connections marked idle while pooled."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._factory = functools.partial(GuardedResponseHandler, loop=self._loop)  # type: ignore[assignment]

    def _release(self, key: Any, protocol: ResponseHandler, *, should_close: bool = False) -> None:
        if isinstance(protocol, GuardedResponseHandler):
            protocol.idle = True
        super()._release(key, protocol, should_close=should_close)


class GuardedAiohttpTransport(AiohttpTransport):
    """httpx-aiohttp's transport, without the reason phrase and without leaking a response it failed to wrap."""

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session, built on first use (inside the event loop that owns the pool)."""
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        return self.client

    @staticmethod
    def client_timeout(timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        """The aiohttp timeouts `handle_async_request` derives from httpx's per-phase timeouts (`Timeout.as_dict()`)."""
        return aiohttp.ClientTimeout(
            sock_connect=timeout.get("connect"), sock_read=timeout.get("read"), connect=timeout.get("pool")
        )

    async def get(self, url: str, headers: Mapping[str, str], timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        """`handle_async_request` for a GET without a body, minus httpx: `url` as `str(httpx.URL)` gives it, `headers`
        as `httpx.Headers.items()` gives them (lower-cased names, `host` first), `timeout` from `client_timeout`.

        Returns the open aiohttp response (read `content`, then `await response.__aexit__(None, None, None)`, as
        httpx-aiohttp's stream does); raises aiohttp's exceptions unmapped (`as_httpx_error` maps them).
        """
        return await (
            self.session()
            .request(
                "GET",
                url,
                headers=headers,
                data=None,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=timeout,
                server_hostname=None,
            )
            .__aenter__()
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self.session()
        with map_aiohttp_exceptions():
            response = await session.request(
                method=request.method,
                url=str(request.url),
                headers=request.headers,
                data=request.content or None,
                allow_redirects=False,
                auto_decompress=False,  # we decode, bounded (upstreams/decoding.py)
                compress=False,
                timeout=self.client_timeout(request.extensions.get("timeout", {})),
                server_hostname=request.extensions.get("sni_hostname"),
            ).__aenter__()
        try:
            return httpx.Response(
                status_code=response.status,
                headers=response.raw_headers,
                stream=AiohttpResponseStream(response),
                request=request,
                extensions={"http_version": b"HTTP/1.1"},
            )
        except BaseException:
            response.close()
            raise


def aiohttp_transport(config: UpstreamConfig) -> httpx.AsyncBaseTransport:
    """The production transport: aiohttp's connection pool (guarded, see above) behind httpx's API.

    The session is built on first use, inside the event loop that owns the pool.
    """
    limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)

    def session() -> aiohttp.ClientSession:
        connector = GuardedConnector(
            limit=config.max_connections, keepalive_timeout=limits.keepalive_expiry, ssl=transport.ssl_context
        )
        # No cookie jar: a Set-Cookie that answered one end user's call would be sent on every later call to the
        # upstream, whoever made it (tests/upstreams/test_hostile_upstream.py). It also saves the jar's work per call.
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    # As AiohttpTransport would build it itself (its TLS context included), but with the guarded connector.
    transport = GuardedAiohttpTransport(limits=limits, client=session)
    return transport


def as_httpx_error(exc: Exception) -> Exception:
    """`exc` as httpx-aiohttp reports it: the httpx exception its `map_aiohttp_exceptions` raises (chained from
    `exc`), or `exc` itself for what that mapping lets through. Used where `get` bypasses httpx-aiohttp."""
    try:
        with map_aiohttp_exceptions():
            raise exc
    except Exception as mapped:  # noqa: BLE001 - whatever the mapping raised is the answer
        return mapped
    raise AssertionError("unreachable")  # pragma: no cover


_CONNECTING = (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError, aiohttp.ServerFingerprintMismatch)


def translate_aiohttp_cause(exc: BaseException, upstream: str) -> UpstreamError | None:
    """The upstream error for the aiohttp connection error behind an httpx exception, if there is one.

    httpx-aiohttp 0.2 reports every `aiohttp.ClientConnectionError` as `httpx.ConnectTimeout`: a refused connection,
    but also a read timeout and a server hanging up mid-exchange. The cause it chains tells them apart.
    """
    cause = exc.__cause__
    if isinstance(
        cause, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError | aiohttp.ServerFingerprintMismatch
    ):
        return UpstreamConnectError(upstream)
    if isinstance(cause, aiohttp.ServerTimeoutError):
        return UpstreamTimeout(upstream)
    if isinstance(cause, aiohttp.ClientConnectionError):
        return UpstreamProtocolError(upstream)  # connected, then lost: disconnected or reset mid-exchange
    return None
