"""The client's direct exchange on aiohttp (`GuardedAiohttpTransport.get`, `UpstreamClient._exchange_direct`) is the
httpx exchange (`handle_async_request`, `httpx.Response.aiter_raw`, `_exchange_httpx`) over the same transport.

Every case runs the same calls twice against the same raw-socket server (tests/hostile_upstream.py): once with the
production transport as it is (the client takes the direct path), once with that transport behind a plain
`httpx.AsyncBaseTransport` that delegates to it (the client no longer recognises it and takes the httpx path). The two
runs must agree on everything an outsider can see:

- the bytes on the wire: each request's line and headers as the server received them (names, case, order, values),
  no body (no framing header, and no bytes the server would read as a further request);
- what aiohttp was asked to do: the URL, the headers as aiohttp reads them, the timeouts, redirects, decompression;
- the outcome of each call: the decoded payload and the other `Fetched` fields, or the error's type, code, detail,
  status and Retry-After, and the aiohttp exception at the root of its `__cause__` chain;
- what the client logged, and how many requests and connections the server saw.

Each run also checks it took its path (`client._direct`, and which of the transport's `get` and
`handle_async_request` every exchange went through). The comparison fails when the direct path diverges; each of
these was applied once (monkeypatched for one run of this file, upstreams/ untouched) and failed the cases named:
`_as_sent` keeping the header names' case (46 of 46 cases: wire bytes), putting `host` last (46: what aiohttp was
given; aiohttp itself writes Host first), not joining names that differ only in case (configured `accept`/`Accept`:
2), `_translate` without `as_httpx_error` (the four cases where the server hangs up: a warning logged only by the
direct path; a refused connection is an OSError and ends the same either way), only the last Content-Encoding line
read (two gzip lines: 1), `client_timeout` swapping connect and read (46: aiohttp's timeouts), `_target` passing
the URL unnormalised (percent-encoding: 2, what aiohttp was given; yarl re-quotes it to the same wire bytes).
The error chains match too: where httpx-aiohttp maps the aiohttp exception (a hang-up, a refused connection), both
paths' errors are caused by the httpx exception, itself caused by aiohttp's (api/problems.py logs that chain).
"""

from __future__ import annotations

import gzip
import logging
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import aiohttp
import httpx
import pytest
from django.core.cache import cache as django_cache
from django.utils.datastructures import CaseInsensitiveMapping
from multidict import CIMultiDict

from tests.conftest import assert_clean
from tests.hostile_upstream import (
    OK_BODY,
    HostileUpstream,
    Mode,
    answer,
    close_after,
    ok,
    response,
    stall_after,
)
from tests.servers import closed_port_url
from upstreams import UpstreamClient, UpstreamConfig, UpstreamError, aiohttp_transport
from upstreams.config import BreakerPolicy, RetryPolicy
from upstreams.context import incoming_headers, request_id
from upstreams.transport import GuardedAiohttpTransport

LIMIT = 64 * 1024  # MAX_BODY_BYTES: small, so bodies over it are cheap to send
TIMEOUT = 2.0  # the call's budget, for every case that does not stall
CONNECT_TIMEOUT = 1.5  # not the budget: a path that swapped the two would show in what aiohttp is given
STALL_TIMEOUT = 0.2  # the budget of those that stall (each runs twice)
# A fixed date an hour ahead (module import time), so both runs receive the same bytes.
RETRY_DATE = formatdate(time.time() + 3600, usegmt=True).encode()


def chunked(*chunks: bytes, headers: bytes = b"Content-Type: application/json\r\n") -> bytes:
    head = b"HTTP/1.1 200 OK\r\n" + headers + b"Transfer-Encoding: chunked\r\n\r\n"
    return head + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"


def deflate(data: bytes, *, raw: bool = False) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def coded(body: bytes, *codings: bytes) -> Mode:
    return answer(response(body, headers=[(b"Content-Encoding", coding) for coding in codings]))


def status(line: bytes, *headers: tuple[bytes, bytes], body: bytes = b'{"error": "x"}') -> Mode:
    return answer(response(body, status=line, headers=list(headers)))


MISS, REVALIDATED = "miss", "revalidated"
ETAG = [(b"ETag", b'"v1"'), (b"Cache-Control", b"no-cache")]  # stored, and revalidated on every later call
NOT_MODIFIED = b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nCache-Control: no-cache\r\n\r\n'


@dataclass(frozen=True)
class Case:
    """Calls made in one run, each answered by the next mode (a fresh one per run), with this configuration and
    request context."""

    answers: tuple[Callable[[], Mode], ...] = (ok,)
    config: Mapping[str, Any] = field(default_factory=dict)
    base_path: str = ""
    path: str = "data"
    params: Mapping[str, str | int | float | None] | None = None
    request_id: str | None = None
    incoming: Mapping[str, str] | None = None
    refused: bool = False  # nothing listens at the base URL
    expect: tuple[str, ...] = (MISS,)  # per call: the direct run's cache status, or its error's code


PROTOCOL, BAD, TOO_LARGE = "upstream_protocol_error", "upstream_bad_response", "upstream_body_too_large"
STATUS, TIMED_OUT = "upstream_status", "upstream_timeout"
STALLING = {"timeout": STALL_TIMEOUT, "connect_timeout": STALL_TIMEOUT / 2}

CASES: dict[str, Case] = {
    # -- bodies that decode
    "200-json-content-length": Case(),
    "200-chunked": Case((lambda: answer(chunked(OK_BODY[:10], OK_BODY[10:40], OK_BODY[40:])),)),
    "gzip": Case((lambda: coded(gzip.compress(OK_BODY), b"gzip"),)),
    "deflate-zlib": Case((lambda: coded(deflate(OK_BODY), b"deflate"),)),
    "deflate-raw": Case((lambda: coded(deflate(OK_BODY, raw=True), b"deflate"),)),
    "identity-and-gzip-on-two-lines": Case((lambda: coded(gzip.compress(OK_BODY), b"identity", b"gzip"),)),
    "reason-phrase-not-utf8": Case((lambda: answer(response(status=b"200 \xff\xfe\xc3")),)),
    "problem-json-content-type": Case((lambda: answer(response(content_type=b"application/problem+json")),)),
    "no-content-type": Case(
        (lambda: answer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(OK_BODY), OK_BODY)),)
    ),
    "set-cookie-never-sent-back": Case(
        (lambda: answer(response(headers=[(b"Set-Cookie", b"s=1")])), ok), expect=(MISS,) * 2
    ),
    # -- answers we refuse
    "gzip-on-two-lines": Case((lambda: coded(gzip.compress(gzip.compress(OK_BODY)), b"gzip", b"gzip"),), expect=(BAD,)),
    "unknown-coding": Case((lambda: coded(OK_BODY, b"x-evil"),), expect=(BAD,)),
    "corrupt-gzip": Case((lambda: coded(b"\x1f\x8b\x08\x00garbage" * 10, b"gzip"),), expect=(BAD,)),
    "404": Case((lambda: status(b"404 Not Found"),), expect=("upstream_not_found",)),
    "500": Case((lambda: status(b"500 Internal Server Error"),), expect=(STATUS,)),
    "503-retry-after-seconds": Case(
        (lambda: status(b"503 Service Unavailable", (b"Retry-After", b"7")),), expect=(STATUS,)
    ),
    "429-retry-after-http-date": Case(
        (lambda: status(b"429 Too Many Requests", (b"Retry-After", RETRY_DATE)),), expect=(STATUS,)
    ),
    "302-not-followed": Case((lambda: status(b"302 Found", (b"Location", b"http://127.0.0.1:9/")),), expect=(STATUS,)),
    "text-html": Case(
        (lambda: answer(response(b"<html></html>", content_type=b"text/html; charset=utf-8")),),
        expect=("upstream_bad_content_type",),
    ),
    "invalid-json": Case((lambda: answer(response(b"{not json")),), expect=("upstream_invalid_json",)),
    "content-length-over-limit": Case((lambda: close_after(response(b"{}", length=LIMIT + 1)),), expect=(TOO_LARGE,)),
    "chunked-over-limit": Case((lambda: close_after(chunked(b"[" + b" " * LIMIT, b"]")),), expect=(TOO_LARGE,)),
    "gzip-over-limit": Case((lambda: coded(gzip.compress(b" " * (4 * LIMIT)), b"gzip"),), expect=(TOO_LARGE,)),
    # -- broken exchanges
    "closed-mid-body": Case((lambda: close_after(response()[:-5]),), expect=(PROTOCOL,)),
    "closed-mid-chunked-body": Case((lambda: close_after(chunked(OK_BODY)[:-10]),), expect=(PROTOCOL,)),
    "closed-without-answering": Case((lambda: close_after(b""),), expect=(PROTOCOL,)),
    "closed-mid-headers": Case((lambda: close_after(b"HTTP/1.1 200 OK\r\nContent-Type: appl"),), expect=(PROTOCOL,)),
    "garbage-status-line": Case((lambda: answer(b"HTTP/1.1 abc nonsense\r\n\r\n"),), expect=(PROTOCOL,)),
    "binary-status-line": Case((lambda: answer(b"\x00\xff\xfe garbage\r\n\r\n"),), expect=(PROTOCOL,)),
    "too-many-headers": Case(
        (lambda: answer(response(headers=[(b"X-H%d" % i, b"v") for i in range(1000)])),), expect=(PROTOCOL,)
    ),
    "too-long-header": Case((lambda: answer(response(headers=[(b"X-Big", b"a" * 200_000)])),), expect=(PROTOCOL,)),
    "bad-chunk-size": Case(
        (lambda: close_after(chunked(OK_BODY).replace(b"\r\n\r\n%x\r\n" % len(OK_BODY), b"\r\n\r\nzz\r\n")),),
        expect=(PROTOCOL,),
    ),
    "content-length-not-a-number": Case(
        (lambda: answer(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}"),), expect=(PROTOCOL,)
    ),
    "stall-before-status": Case((lambda: stall_after(b""),), config=STALLING, expect=(TIMED_OUT,)),
    "stall-mid-headers": Case(
        (lambda: stall_after(b"HTTP/1.1 200 OK\r\nContent-Type: appl"),), config=STALLING, expect=(TIMED_OUT,)
    ),
    "stall-mid-body": Case((lambda: stall_after(response()[:-5]),), config=STALLING, expect=(TIMED_OUT,)),
    "connection-refused": Case((), refused=True, expect=("upstream_unreachable",)),
    # -- revalidation
    "304-revalidates-an-etag": Case(
        (lambda: answer(response(headers=ETAG)), lambda: answer(NOT_MODIFIED)), expect=(MISS, REVALIDATED)
    ),
    "200-answers-a-revalidation": Case(
        (lambda: answer(response(headers=ETAG)), lambda: answer(response(b"[2]"))), expect=(MISS, MISS)
    ),
    "304-without-if-none-match": Case((lambda: answer(NOT_MODIFIED),), expect=(STATUS,)),
    # -- request header sets and URLs
    "headers-token-and-configured": Case(
        config={
            "token": "s3cret",
            "headers": {"X-Extra": "1", "accept": "text/plain", "x-extra": "2", "Host": "api.example:8443"},
        },
        base_path="/v1",
    ),
    "headers-forwarded": Case(
        config={"forward_headers": ("Authorization", "accept-language")},
        incoming={"authorization": "Bearer user-1", "Accept-Language": "fr-CH, fr;q=0.9", "Cookie": "no"},
    ),
    "headers-forwarded-and-revalidating": Case(
        (lambda: answer(response(headers=[*ETAG, (b"Cache-Control", b"public")])), lambda: answer(NOT_MODIFIED)),
        config={"forward_headers": ("Accept-Language",)},
        incoming={"accept-language": "de"},
        expect=(MISS, REVALIDATED),
    ),
    "request-id": Case(request_id="req-7f3a"),
    "query-and-path-encoding": Case(
        base_path="/base path/v1",
        path="données/ü é/%41;x",
        params={"q": "a b&c=d/é?#", "pct": "100%", "plus": "1+1", "skipped": None, "n": 3, "f": 0.5},
    ),
    "everything-at-once": Case(
        (lambda: answer(response(headers=[*ETAG, (b"Cache-Control", b"public")])), lambda: answer(NOT_MODIFIED)),
        config={"token": "t", "headers": {"ACCEPT-ENCODING": "gzip", "host": "h"}, "forward_headers": ("X-Tenant",)},
        base_path="/v1/",
        path="/ö",
        params={"q": "ü"},
        incoming={"x-tenant": "acme"},
        request_id="rid",
        expect=(MISS, REVALIDATED),
    ),
}

# The cases whose errors come from an aiohttp exception: their whole `__cause__` chains are compared too.
TRANSPORT_ERRORS = [
    "closed-mid-body",
    "closed-mid-chunked-body",
    "closed-without-answering",
    "closed-mid-headers",
    "connection-refused",
    "garbage-status-line",
    "binary-status-line",
    "too-many-headers",
    "too-long-header",
    "bad-chunk-size",
    "content-length-not-a-number",
]


class ViaHttpx(httpx.AsyncBaseTransport):
    """The same transport, as any httpx transport: the client does not recognise it and takes the httpx path."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Run:
    heads: list[bytes] = field(default_factory=list)  # each request's line and headers, as the server received them
    asked: list[tuple[Any, ...]] = field(default_factory=list)  # what aiohttp's session.request was given
    entries: list[str] = field(default_factory=list)  # the transport method each exchange called
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    errors: list[UpstreamError] = field(default_factory=list)
    logs: list[tuple[str, str, str]] = field(default_factory=list)
    requests: int = 0
    connections: int = 0


def recorded(mode: Mode, heads: list[bytes]) -> Mode:
    async def recording(exchange: Any) -> bool:
        heads.append(exchange.head)
        return await mode(exchange)

    return recording


@contextmanager
def spying_on_aiohttp(monkeypatch: pytest.MonkeyPatch, result: Run) -> Iterator[None]:
    """Record the arguments of every `aiohttp.ClientSession.request`, headers as aiohttp reads them (a
    `CIMultiDict` of the mapping given: `httpx.Headers.items()` on the httpx path, the dict on the direct one), and
    count which of the transport's entry points each exchange went through."""
    original_request = aiohttp.ClientSession.request
    original_get = GuardedAiohttpTransport.get
    original_handle = GuardedAiohttpTransport.handle_async_request

    def request(self: aiohttp.ClientSession, method: str, url: Any, **kwargs: Any) -> Any:
        given = dict(kwargs)
        headers = list(CIMultiDict(given.pop("headers")).items())
        result.asked.append((method, str(url), headers, sorted(given.items(), key=lambda item: item[0])))
        return original_request(self, method, url, **kwargs)

    async def get(self: GuardedAiohttpTransport, *args: Any) -> Any:
        result.entries.append("get")
        return await original_get(self, *args)

    async def handle_async_request(self: GuardedAiohttpTransport, request: httpx.Request) -> httpx.Response:
        result.entries.append("handle_async_request")
        return await original_handle(self, request)

    with monkeypatch.context() as patch:
        patch.setattr(aiohttp.ClientSession, "request", request)
        patch.setattr(GuardedAiohttpTransport, "get", get)
        patch.setattr(GuardedAiohttpTransport, "handle_async_request", handle_async_request)
        yield


class _Records(logging.Handler):
    def __init__(self, into: list[tuple[str, str, str]]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append((record.name, record.levelname, record.getMessage()))


@contextmanager
def logged(into: list[tuple[str, str, str]]) -> Iterator[None]:
    logger = logging.getLogger("tributary.upstreams")
    handler, level = _Records(into), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def causes(exc: BaseException) -> list[type[BaseException]]:
    chain = []
    while exc.__cause__ is not None:
        exc = exc.__cause__
        chain.append(type(exc))
    return chain


def error_outcome(exc: UpstreamError) -> dict[str, Any]:
    chain = causes(exc)
    return {
        "type": type(exc),
        "code": exc.code,
        "upstream": exc.upstream,
        "detail": exc.detail,
        "status": getattr(exc, "status_code", None),
        "retry_after": getattr(exc, "retry_after", None),
        "root_cause": chain[-1] if chain else None,
    }


async def run(
    hostile: HostileUpstream, monkeypatch: pytest.MonkeyPatch, case: Case, base_url: str, *, direct: bool
) -> Run:
    settings = {
        "timeout": TIMEOUT,
        "connect_timeout": CONNECT_TIMEOUT,
        "max_body_bytes": LIMIT,
        "retry": RetryPolicy(retries=0),
        "breaker": BreakerPolicy(failures=0),
        **case.config,
    }
    config = UpstreamConfig(name="equivalence", base_url=base_url + case.base_path, **settings)
    transport = aiohttp_transport(config)
    via = ViaHttpx(transport)
    client = UpstreamClient(config, transport=transport if direct else via)
    assert (client._direct is not None) is direct, "the client did not take the path this run is for"

    result = Run()
    # Requests past the script (aiohttp resends a GET once when the server hung up) get the last answer again.
    hostile.reset(recorded(case.answers[-1](), result.heads) if case.answers else None)
    hostile.then(*(recorded(make(), result.heads) for make in case.answers))
    rid = request_id.set(case.request_id)
    incoming = incoming_headers.set(None if case.incoming is None else CaseInsensitiveMapping(case.incoming))
    try:
        with spying_on_aiohttp(monkeypatch, result), logged(result.logs):
            for _ in case.answers or (None,):
                try:
                    fetched = await client.fetch_json(case.path, params=case.params)
                except UpstreamError as exc:
                    result.outcomes.append(error_outcome(exc))
                    result.errors.append(exc)
                else:
                    assert fetched.error is None
                    result.outcomes.append(
                        {
                            "payload": fetched.payload,
                            "cache": fetched.cache,
                            "attempts": fetched.attempts,
                            "age": fetched.age,
                            "freshness": fetched.freshness,
                        }
                    )
    finally:
        request_id.reset(rid)
        incoming_headers.reset(incoming)
        await client.aclose()
    await assert_clean(hostile, client)
    result.requests, result.connections = hostile.requests, hostile.connections
    entry = "get" if direct else "handle_async_request"
    assert result.entries == [entry] * len(result.asked), "an exchange did not take the path this run is for"
    assert via.calls == (0 if direct else len(result.asked))
    django_cache.clear()  # the second run starts from the same empty cache
    return result


@pytest.fixture
def hostile(hostile_server: HostileUpstream) -> HostileUpstream:
    hostile_server.reset()
    return hostile_server


async def both_runs(hostile: HostileUpstream, monkeypatch: pytest.MonkeyPatch, case: Case) -> tuple[Run, Run]:
    base_url = closed_port_url() if case.refused else hostile.url
    django_cache.clear()
    direct = await run(hostile, monkeypatch, case, base_url, direct=True)
    via_httpx = await run(hostile, monkeypatch, case, base_url, direct=False)
    return direct, via_httpx


def without_retry_after(outcomes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[float | None]]:
    """An HTTP-date Retry-After is counted from the moment it is parsed: the runs differ by their distance in time."""
    kept = [{k: v for k, v in outcome.items() if k != "retry_after"} for outcome in outcomes]
    return kept, [outcome.get("retry_after") for outcome in outcomes]


@pytest.mark.parametrize("name", list(CASES))
async def test_the_direct_exchange_is_the_httpx_exchange(
    hostile: HostileUpstream, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    case = CASES[name]
    direct, via_httpx = await both_runs(hostile, monkeypatch, case)

    # The same bytes on the wire: request lines and headers, and no body (no framing header; the server reads any
    # byte after a head as a further request, so the request counts would differ).
    assert direct.heads == via_httpx.heads
    assert len(direct.heads) == direct.requests
    for head in direct.heads:
        names = {line.split(b":", 1)[0].lower() for line in head.split(b"\r\n")[1:] if line}
        assert not names & {b"content-length", b"transfer-encoding"}, head
    # The same request handed to aiohttp: URL, headers as aiohttp reads them, timeouts, no redirects, no decoding.
    assert direct.asked == via_httpx.asked
    assert len(direct.asked) == len(case.answers or (None,))
    # The same outcomes, logs and traffic.
    direct_outcomes, direct_retry_after = without_retry_after(direct.outcomes)
    httpx_outcomes, httpx_retry_after = without_retry_after(via_httpx.outcomes)
    assert direct_outcomes == httpx_outcomes
    assert [outcome.get("code", outcome.get("cache")) for outcome in direct_outcomes] == list(case.expect)
    assert direct_retry_after == pytest.approx(httpx_retry_after, abs=5)
    assert direct.logs == via_httpx.logs
    assert (direct.requests, direct.connections) == (via_httpx.requests, via_httpx.connections)


@pytest.mark.parametrize("name", TRANSPORT_ERRORS)
async def test_a_transport_error_has_the_same_cause_chain_on_both_paths(
    hostile: HostileUpstream, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """What the problem handler logs as the error's cause (`exc_info=exc.__cause__`, api/problems.py)."""
    direct, via_httpx = await both_runs(hostile, monkeypatch, CASES[name])

    assert direct.errors
    assert via_httpx.errors
    assert [causes(e) for e in direct.errors] == [causes(e) for e in via_httpx.errors]
