"""One upstream's HTTP client: httpx requests over a pooled transport, JSON out, and only `UpstreamError`s raised.

The layers, outermost first, each doing one thing:

    fetch_json              decode the body (orjson) or raise UpstreamInvalidJSON; report how it was obtained
    _cached                 answer fresh hits from the cache; on a fault, answer from a stale copy (stale-if-error);
                            identical concurrent misses share one request (single flight, unless COALESCE=false)
    _refresh                revalidate with If-None-Match when there is an ETag; store what may be stored
    _with_retries           retry idempotent failures: full-jitter backoff or the upstream's Retry-After, never past
                            the request's deadline (the first attempt runs bare; stamina runs the retries)
    _attempt                one request: circuit breaker, bulkhead slot, and the attempt's time budget (the smaller
                            of the upstream's timeout and what is left of the request's deadline)
    _exchange               the HTTP exchange on the transport: status, content type, and the body read and decoded
                            within the size limit (`decoding.read_body`: one layer of gzip/deflate, bounded as it
                            is decoded); *any* exception the transport raises becomes an `UpstreamError`
    translate_httpx_error   httpx/transport exceptions -> the upstream error tree

The transport is injected (`TransportFactory`) and called directly with `httpx.Request`s, so tests can swap in
`httpx.MockTransport` or respx. By default it is httpx-aiohttp's `AiohttpTransport` over a guarded aiohttp pool
(`transport.py`: a connection carrying bytes nobody asked for is closed, never reused): httpx's own pool is an order
of magnitude slower under concurrency (`benchmarks/transports.py` has the measurement that chose it).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import orjson
import stamina
from httpx_aiohttp.transport import AiohttpResponseStream

from . import context, observe
from .breaker import Breaker, CircuitBreaker, is_fault
from .bulkhead import Bulkhead
from .cache import CacheEntry, Freshness, ResponseCache
from .config import UpstreamConfig
from .decoding import decoder_for, read_body
from .errors import (
    DeadlineExceeded,
    UpstreamBadContentType,
    UpstreamBodyTooLarge,
    UpstreamConnectError,
    UpstreamError,
    UpstreamInvalidJSON,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamSaturated,
    UpstreamStatusError,
    UpstreamTimeout,
)
from .singleflight import SingleFlight
from .transport import GuardedAiohttpTransport, aiohttp_transport, as_httpx_error, translate_aiohttp_cause

__all__ = [
    "Fetched",
    "TransportFactory",
    "UpstreamClient",
    "aiohttp_transport",
    "httpx_transport",
    "map_httpx_errors",
    "parse_retry_after",
    "translate_httpx_error",
]

logger = logging.getLogger("tributary.upstreams")

TransportFactory = Callable[[UpstreamConfig], httpx.AsyncBaseTransport]
QueryParams = Mapping[str, str | int | float | None]
CacheStatus = Literal["miss", "hit", "revalidated", "stale", "shared"]

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# No attempt starts with less time than this left: it could not finish, and would only add load.
MIN_ATTEMPT_SECONDS = 0.01


_UNKNOWN_FRESHNESS = Freshness(0.0)


@dataclass(frozen=True)
class Fetched:
    """A decoded payload and how it was obtained (for Server-Timing and for reporting stale parts)."""

    payload: Any
    cache: CacheStatus
    attempts: int
    age: float | None = None  # seconds, for cached answers
    error: UpstreamError | None = None  # for stale answers: the failure the stale copy stands in for
    freshness: Freshness = _UNKNOWN_FRESHNESS  # how long whoever we pass it on to may reuse it


_UNPARSED: Any = object()


@dataclass(frozen=True)
class _Raw:
    status: int
    body: bytes
    headers: Mapping[str, str]  # lower-cased names
    attempts: int
    error: UpstreamError | None = None  # set on a stale answer: the failure it stands in for
    payload: Any = _UNPARSED  # the decoded body, once decoded


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP-date (RFC 9110 10.2.3); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # the obsolete asctime form carries no zone; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def httpx_transport(config: UpstreamConfig) -> httpx.AsyncBaseTransport:
    """httpx's own transport (httpcore): slower under load, but what respx patches by default.

    Without keep-alive: httpcore (1.0) pools a connection whose parser still holds bytes received after the
    response (a second response in the same read), and parses them as the next request's response. Only
    `aiohttp_transport` guards its pool against that (see `transport.py`).
    """
    limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=0)
    return httpx.AsyncHTTPTransport(limits=limits)


def translate_httpx_error(exc: Exception, upstream: str) -> UpstreamError:
    """The most specific upstream error for an exception the transport raised (httpx's, or a stray OSError)."""
    if isinstance(exc, httpx.ConnectTimeout):
        # Not "timed out": httpx-aiohttp reports refused connections and early disconnects as ConnectTimeout too.
        return translate_aiohttp_cause(exc, upstream) or UpstreamConnectError(upstream)
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(upstream)
    if isinstance(exc, httpx.ConnectError | OSError):
        return UpstreamConnectError(upstream)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return UpstreamConnectError(upstream, "The upstream URL is not usable.")
    return UpstreamProtocolError(upstream)  # ReadError, RemoteProtocolError, WriteError: the exchange broke mid-way


@contextmanager
def map_httpx_errors(upstream: str) -> Iterator[None]:
    """`translate_httpx_error` as a context manager: httpx's exceptions out, the upstream error tree in."""
    try:
        yield
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        raise translate_httpx_error(exc, upstream) from exc


class UpstreamClient:
    """Calls one upstream. Create one per upstream per event loop (see `UpstreamRegistry`), never per request.

    The breaker and the cache are shared by the whole process (passed in); the HTTP pool, the bulkhead and the
    single-flight table belong to this client's event loop.
    """

    def __init__(
        self,
        config: UpstreamConfig,
        *,
        transport: httpx.AsyncBaseTransport,
        breaker: Breaker | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.breaker: Breaker = breaker or CircuitBreaker(config.name, config.breaker)
        self.cache = cache or ResponseCache(config.name, config.cache)
        self.bulkhead = Bulkhead(config.name, config.bulkhead)
        self.flights = SingleFlight()
        self._base_url = config.base_url + "/"
        # The transport is called directly with httpx Requests: an AsyncClient would add cookie extraction, auth
        # and redirect handling, request merging and event hooks to every call (a quarter of the client's CPU,
        # profiled), none of which a JSON GET to a configured upstream needs.
        self._transport = transport
        self._headers = {
            "User-Agent": "tributary",
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            **config.request_headers(),
        }
        # Per phase; the attempt's whole budget is enforced around it in _attempt.
        self._timeouts = httpx.Timeout(config.timeout, connect=config.connect_timeout).as_dict()
        # The production transport is called without httpx's request and response objects (see transport.py).
        self._direct = transport if isinstance(transport, GuardedAiohttpTransport) else None
        self._client_timeout = GuardedAiohttpTransport.client_timeout(self._timeouts)
        self._forward = config.forward_headers
        self._closed = False

    async def get_json(self, path: str, *, params: QueryParams | None = None) -> Any:
        """GET `path` (relative to the base URL) and return the decoded JSON."""
        return (await self.fetch_json(path, params=params)).payload

    @observe.observed  # metrics, a span, the access log's summary: what the call did (upstreams/observe.py)
    async def fetch_json(self, path: str, *, params: QueryParams | None = None, ttl: float | None = None) -> Fetched:
        """GET `path` through cache, coalescing, retries, breaker and bulkhead; `ttl` overrides CACHE_TTL."""
        url = self._url(path, params)
        forwarded = self._forwarded() if self._forward else None
        raw, cache_status, entry = await self._cached(url, ttl, forwarded)
        payload = raw.payload if raw.payload is not _UNPARSED else self._decode(raw.body)
        age = entry.age(time.time()) if entry is not None and cache_status in ("hit", "stale") else None
        fresh = self._freshness(raw, cache_status, entry, ttl, private=forwarded is not None)
        return Fetched(payload, cache_status, raw.attempts, age=age, error=raw.error, freshness=fresh)

    def _freshness(
        self, raw: _Raw, cache_status: CacheStatus, entry: CacheEntry | None, ttl: float | None, *, private: bool
    ) -> Freshness:
        """How long the payload stays fresh for whoever we pass it on to (a response's Cache-Control is built
        from its parts': see api/aggregation.py). A cached copy: what is left of its freshness; a stale one: none."""
        if cache_status == "stale":
            return Freshness(0.0, private=private)
        if cache_status == "hit" and entry is not None:
            return Freshness(max(0.0, entry.fresh_until - time.time()), private=private)
        default_ttl = self.cache.policy.ttl if ttl is None else ttl
        return Freshness.of_response(raw.headers, default_ttl=default_ttl, private=private)

    def _decode(self, body: bytes) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamInvalidJSON(self.name) from None

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._transport.aclose()

    def _url(self, path: str, params: QueryParams | None) -> str:
        """The absolute URL, built once: it is the cache and coalescing key, and what httpx requests."""
        url = self._base_url + path.lstrip("/")
        query = urlencode(_clean(params))
        if query:
            url += ("&" if "?" in url else "?") + query
        return url

    @property
    def is_closed(self) -> bool:
        return self._closed

    def _forwarded(self) -> dict[str, str] | None:
        """The end user's values of the headers this upstream forwards (None: the request has none of them)."""
        incoming = context.incoming_headers.get()
        if incoming is None:
            return None
        forwarded = {}
        for name in self._forward:
            value = incoming.get(name)
            if value is not None and value.isascii() and value.isprintable():
                forwarded[name] = value
        return forwarded or None

    async def _cached(
        self, url: str, ttl: float | None, forwarded: dict[str, str] | None = None
    ) -> tuple[_Raw, CacheStatus, CacheEntry | None]:
        # The cache and coalescing key: the URL, plus a digest of the forwarded values (never the values themselves)
        # so only requests that forwarded identical values share a response, stored or in flight.
        key = url if forwarded is None else f"{url}\n{_digest(forwarded)}"
        entry = await self.cache.get(key)
        if entry is not None and entry.is_fresh(time.time()):
            return _Raw(200, entry.body, {}, attempts=0), "hit", entry
        try:
            if self.config.coalesce:
                raw, shared = await self.flights.run(key, lambda: self._refresh(url, key, entry, ttl, forwarded))
            else:
                raw, shared = await self._refresh(url, key, entry, ttl, forwarded), False
        except UpstreamError as exc:
            if entry is not None and is_fault(exc) and entry.stale_usable(time.time(), self.cache.policy):
                return _Raw(200, entry.body, {}, attempts=0, error=exc), "stale", entry
            raise
        if shared:
            return raw, "shared", entry
        return raw, ("revalidated" if raw.status == 304 else "miss"), entry

    async def _refresh(
        self, url: str, key: str, entry: CacheEntry | None, ttl: float | None, forwarded: dict[str, str] | None
    ) -> _Raw:
        """Call the upstream (revalidating `entry` if it has an ETag) and store what may be stored under `key`."""
        headers = dict(forwarded) if forwarded else {}
        if entry is not None and entry.etag:
            headers["If-None-Match"] = entry.etag
        raw = await self._with_retries(url, headers)
        shared_only = forwarded is not None
        if raw.status == 304 and entry is not None:
            await self.cache.refresh(key, entry, raw.headers, ttl=ttl, forwarded=shared_only)
            return _Raw(304, entry.body, raw.headers, raw.attempts)
        payload = self._decode(raw.body)  # before storing: a body that is not JSON is never cached
        await self.cache.store(key, raw.body, raw.headers, ttl=ttl, forwarded=shared_only)
        return _Raw(raw.status, raw.body, raw.headers, raw.attempts, payload=payload)

    async def _with_retries(self, url: str, headers: Mapping[str, str]) -> _Raw:
        # The first attempt runs bare: most calls succeed, and setting up stamina's retry loop for each of them
        # cost a tenth of the client's CPU (profiled). Only a failure worth retrying enters the loop.
        try:
            return await self._attempt(url, headers)
        except UpstreamError as exc:
            wait = self._backoff(exc, 1)
            if wait is False or self.config.retry.retries == 0:
                raise
        await asyncio.sleep(float(wait))
        attempts = 1

        def backoff(exc: Exception) -> bool | float:
            return self._backoff(exc, attempts)

        async for attempt in stamina.retry_context(
            on=backoff, attempts=self.config.retry.retries, timeout=None, wait_initial=0, wait_max=0, wait_jitter=0
        ):
            with attempt:
                attempts += 1
                observe.retried(self.name)
                raw = await self._attempt(url, headers)
                return _Raw(raw.status, raw.body, raw.headers, attempts)
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def _backoff(self, exc: Exception, attempts: int) -> bool | float:
        """stamina's hook: False to give up, else the seconds to wait before the next attempt."""
        if not _retryable(exc):
            return False
        policy = self.config.retry
        retry_after = exc.retry_after if isinstance(exc, UpstreamStatusError) else None
        if retry_after is not None:
            if retry_after > policy.retry_after_max:
                return False  # the upstream asks for longer than we are willing to hold the request
            wait = retry_after
        else:  # full jitter: uniform over [0, min(max, base * 2^(n-1))]
            wait = random.uniform(0, min(policy.backoff_max, policy.backoff * 2 ** (attempts - 1)))  # noqa: S311
        left = context.remaining()
        if left is not None and wait + MIN_ATTEMPT_SECONDS >= left:
            return False  # the next attempt could not finish before the request's deadline
        return wait

    async def _attempt(self, url: str, headers: Mapping[str, str]) -> _Raw:
        """One request: admitted by the breaker, inside a bulkhead slot, within the attempt's time budget."""
        self._check_deadline()
        probe = await self.breaker.acquire()
        try:
            await self.bulkhead.acquire(wait=self._budget())
            try:
                budget = self._budget()  # again: waiting for the slot used some of it
                try:
                    async with asyncio.timeout(budget):
                        raw = await self._exchange(url, headers)
                except TimeoutError:
                    cut_short = budget < self.config.timeout  # by the request's deadline
                    raise (DeadlineExceeded if cut_short else UpstreamTimeout)(self.name) from None
            finally:
                self.bulkhead.release()
        except UpstreamSaturated:
            await self.breaker.abandon(probe=probe)  # never reached the upstream: no verdict on its health
            raise
        except UpstreamError as exc:
            await self.breaker.report(exc, probe=probe)
            raise
        except BaseException:
            # Cancelled: no verdict either. Shielded so the bookkeeping survives the cancellation it handles.
            await asyncio.shield(self.breaker.abandon(probe=probe))
            raise
        await self.breaker.report(None, probe=probe)
        return raw

    def _budget(self) -> float:
        """The attempt's time: the upstream's timeout, or less if the request's deadline is nearer."""
        left = context.remaining()
        return self.config.timeout if left is None else max(0.0, min(self.config.timeout, left))

    def _check_deadline(self) -> None:
        left = context.remaining()
        if left is not None and left < MIN_ATTEMPT_SECONDS:
            raise DeadlineExceeded(self.name)

    async def _exchange(self, url: str, headers: Mapping[str, str]) -> _Raw:
        request_headers = {**self._headers, **headers}
        if (rid := context.request_id.get()) is not None:
            request_headers[context.REQUEST_ID_HEADER] = rid
        observe.outgoing(request_headers)  # trace context (traceparent), when tracing is on
        revalidating = "If-None-Match" in headers
        try:  # translating inline (not `with map_httpx_errors`): one context manager less per call
            if self._direct is not None:
                return await self._exchange_direct(self._direct, url, request_headers, revalidating=revalidating)
            return await self._exchange_httpx(url, request_headers, revalidating=revalidating)
        except UpstreamError:
            raise
        except Exception as exc:  # noqa: BLE001 - the transport's own exceptions, whatever they are
            # On the direct path, first what httpx-aiohttp would have raised in its place (chained as it chains it).
            cause = as_httpx_error(exc) if self._direct is not None else exc
            raise self._translate(cause) from cause

    async def _exchange_direct(
        self, transport: GuardedAiohttpTransport, url: str, request_headers: Mapping[str, str], *, revalidating: bool
    ) -> _Raw:
        """The exchange on aiohttp itself: what `handle_async_request` would send and receive (see transport.py)."""
        target, host = _target(url)
        response = await transport.get(target, _as_sent(host, request_headers), self._client_timeout)
        try:
            raw_headers = response.raw_headers
            response_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
            answered = self._check_head(response.status, response_headers, revalidating=revalidating)
            if answered is not None:
                return answered
            coding = response_headers.get("content-encoding")
            if coding is not None:  # every Content-Encoding line (the dict kept the last): two lines are two layers
                coding = ",".join(v.decode("latin-1") for k, v in raw_headers if k.lower() == b"content-encoding")
            chunks = response.content.iter_chunked(AiohttpResponseStream.CHUNK_SIZE)
            body = await self._read_limited(chunks, response_headers, coding)
            return _Raw(200, body, response_headers, attempts=1)
        finally:
            await response.__aexit__(None, None, None)

    async def _exchange_httpx(self, url: str, request_headers: Mapping[str, str], *, revalidating: bool) -> _Raw:
        """The exchange through any httpx transport (httpx's own, `httpx.MockTransport`, respx)."""
        extensions = {"timeout": self._timeouts}
        request = get_request(_parsed(url), request_headers, extensions)
        response = await self._transport.handle_async_request(request)
        try:
            # One pass over the raw headers into a plain dict: httpx's Headers scans and decodes per lookup.
            response_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers.raw}
            answered = self._check_head(response.status_code, response_headers, revalidating=revalidating)
            if answered is not None:
                return answered
            coding = response_headers.get("content-encoding")
            if coding is not None:  # every Content-Encoding line (the dict kept the last): two lines are two layers
                coding = ",".join(response.headers.get_list("content-encoding"))
            if response.is_stream_consumed:
                # An in-memory response (httpx.MockTransport, respx) was read and decoded when it was built.
                body = await self._read_limited(_single(response.content), response_headers, coding, decoded=True)
            else:
                body = await self._read_limited(response.aiter_raw(), response_headers, coding)
            return _Raw(200, body, response_headers, attempts=1)
        finally:
            await response.aclose()

    def _translate(self, exc: Exception) -> UpstreamError:
        """The upstream error for an exception the transport raised (as httpx-aiohttp raises it)."""
        if isinstance(exc, httpx.HTTPError | httpx.InvalidURL | OSError):
            return translate_httpx_error(exc, self.name)
        # aiohttp raises more than httpx-aiohttp maps (ClientResponseError for a garbage status line, too many or too
        # long headers, a bad chunk; ...): a broken exchange, never a 500.
        # Its type and message only (repr'd: the upstream chose those bytes), never its request info (our headers).
        message = _truncated(repr(str(getattr(exc, "message", ""))))
        logger.warning("%s: the exchange broke: %s %s", self.name, type(exc).__name__, message)
        return UpstreamProtocolError(self.name)

    def _check_head(self, status: int, headers: Mapping[str, str], *, revalidating: bool) -> _Raw | None:
        """The response's status line and headers: a 304 that answers our revalidation (returned), or a status and
        content type worth reading the body for (None), or the upstream error they amount to (raised)."""
        if status == 304 and revalidating:
            return _Raw(304, b"", headers, attempts=1)
        self._check_status(status, headers)
        self._check_content_type(headers)
        return None

    def _check_status(self, status: int, headers: Mapping[str, str]) -> None:
        if status == 404:
            raise UpstreamNotFound(self.name)
        if not 200 <= status < 300:
            raise UpstreamStatusError(self.name, status, retry_after=parse_retry_after(headers.get("retry-after")))

    def _check_content_type(self, headers: Mapping[str, str]) -> None:
        content_type = headers.get("content-type")
        if content_type is None:
            return  # no claim either way: let the JSON decoder decide
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            # The upstream chose this text (any length, any characters): the log may show it, the client never.
            logger.info("%s: content type %s is not JSON", self.name, _truncated(repr(media_type)))
            raise UpstreamBadContentType(self.name)

    async def _read_limited(
        self, chunks: AsyncIterator[bytes], headers: Mapping[str, str], coding: str | None, *, decoded: bool = False
    ) -> bytes:
        """Read and decode the body, refusing it as soon as it is known to exceed the limit (see `decoding`).
        `decoded`: the chunks are already decoded (the codings are still checked)."""
        limit = self.config.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared[:20]) > limit:
            raise UpstreamBodyTooLarge(self.name, limit)
        decoder = decoder_for(coding, self.name)  # stacked or unknown codings: refused
        return await read_body(chunks, None if decoded else decoder, limit=limit, upstream=self.name)


def _digest(forwarded: Mapping[str, str]) -> str:
    return hashlib.sha256(repr(sorted((name.lower(), value) for name, value in forwarded.items())).encode()).hexdigest()


async def _single(body: bytes) -> AsyncIterator[bytes]:
    yield body


_NO_BODY = httpx.ByteStream(b"")  # immutable: every GET shares it


def get_request(url: httpx.URL, headers: Mapping[str, str], extensions: dict[str, Any]) -> httpx.Request:
    """`httpx.Request("GET", url, headers=headers, extensions=extensions)`, built for a third of its cost.

    httpx encodes the (absent) body and then rebuilds the headers to add `Host`: here the empty body is given as the
    stream httpx would have made, and `Host` is put first, as httpx's `_prepare()` does (unless the headers have one).
    The result is the same request: method, URL, headers in the same order, content, extensions
    (tests/upstreams/test_client.py compares them over URLs and header sets; httpx 0.28).
    """
    if any(name.lower() == "host" for name in headers):
        request = httpx.Request("GET", url, headers=headers, extensions=extensions, stream=_NO_BODY)
    else:
        with_host = [("Host", url.netloc.decode("ascii")), *headers.items()]  # netloc: ASCII (IDNA-encoded) bytes
        request = httpx.Request("GET", url, headers=with_host, extensions=extensions, stream=_NO_BODY)
    request.read()  # `request.content` is there, as for a request httpx built
    return request


def _as_sent(host: str, headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` as httpx-aiohttp hands a request's headers to aiohttp: `httpx.Headers.items()`, i.e. lower-cased names
    (values of names that differ only in case joined by ", "), `host` first unless the headers have their own."""
    sent = {"host": host}
    own_host = False
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "host" and not own_host:
            own_host = True
            del sent["host"]
        if lowered in sent:
            sent[lowered] += ", " + value
        else:
            sent[lowered] = value
    return sent


@lru_cache(maxsize=4096)
def _target(url: str) -> tuple[str, str]:
    """The URL as httpx passes it to its transport (normalised by `httpx.URL`), and its `Host` header value."""
    parsed = _parsed(url)
    return str(parsed), parsed.netloc.decode("ascii")


@lru_cache(maxsize=4096)
def _parsed(url: str) -> httpx.URL:
    """httpx URLs are immutable and parsing one is a third of building a request: the same URLs recur."""
    return httpx.URL(url)


def _truncated(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _retryable(exc: Exception) -> bool:
    """Idempotent GETs are retried on connect errors, timeouts, broken exchanges, 429, 502, 503 and 504."""
    if isinstance(exc, UpstreamStatusError):
        return exc.status_code in RETRY_STATUSES
    if isinstance(exc, DeadlineExceeded):
        return False
    return isinstance(exc, UpstreamConnectError | UpstreamTimeout | UpstreamProtocolError)


def _clean(params: QueryParams | None) -> dict[str, str | int | float]:
    return {key: value for key, value in (params or {}).items() if value is not None}
