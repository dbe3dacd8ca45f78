"""The demo upstreams: five simulated JSON services in one pure ASGI application.

``slow``, ``catalog``, ``inventory``, ``reviews`` and ``fx`` answer from the deterministic data in
``data.py`` after a configurable latency, and each can be told to misbehave (time out, fail, send broken,
wrong or huge bodies, drop the connection) so the aggregator's resilience can be exercised over a real
socket. It uses no web framework on purpose: ``config/asgi.py`` mounts it under ``/demo``, ``manage.py
demo_upstreams`` runs it alone, and neither should drag Django's request machinery into what must look like a
foreign service.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson

from .. import declared
from . import data

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = tuple[tuple[bytes, bytes], ...]

SERVICES: Final = declared.demo_names()  # each has its routes in _ROUTES below
# Besides these, any HTTP error status from 400 to 599 (e.g. "503") is a fault: answer with that status.
FAULT_KINDS: Final = ("timeout", "slow", "invalid_json", "wrong_shape", "html", "huge", "reset")

SLOW_FAULT_FACTOR: Final = 10.0
# A "timeout" upstream waits for the client to give up; the cap only stops a forgotten connection living on.
TIMEOUT_FAULT_CAP_S: Final = 3600.0
REQUEST_ID_HISTORY: Final = 1000
DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100
MAX_BATCH_KEYS: Final = 100  # SKUs per `GET /inventory/stock?skus=...`
# Far past the last page, yet small enough that int() never meets a pathological number of digits.
MAX_PAGE: Final = 1_000_000

_JSON: Final = b"application/json"
_HTML: Final = b"text/html; charset=utf-8"
# Wrong types for the keys every service's client relies on, so any schema check rejects it.
_WRONG_SHAPE: Final = {
    "id": "not-a-number",
    "total": "many",
    "items": "not-a-list",
    "price": None,
    "available": "plenty",
    "rates": ["not", "a", "mapping"],
}
# A JSON array of 1 KiB strings, sent 64 KiB at a time: 12 MiB in all.
_HUGE_CHUNK: Final = (b'"' + b"x" * 1021 + b'",') * 64
_HUGE_CHUNKS: Final = 192
_HUGE_HEAD: Final = b"["
_HUGE_TAIL: Final = b'"end"]'
_HUGE_LENGTH: Final = len(_HUGE_HEAD) + _HUGE_CHUNKS * len(_HUGE_CHUNK) + len(_HUGE_TAIL)
_RESET_PROMISED_LENGTH: Final = 1000
_RESET_SENT: Final = b'{"items": ["' + b"x" * 88


class InjectedReset(RuntimeError):
    """Raised on purpose mid-body by the ``reset`` fault, so the ASGI server drops the connection."""


def parse_faults(spec: str) -> dict[str, str]:
    """Parse ``"reviews=timeout,inventory=500"`` into ``{"reviews": "timeout", "inventory": "500"}``.

    A blank spec means no faults. Raises ``ValueError`` naming the offending part on bad syntax, an unknown
    service, an unknown fault kind or a service given twice.
    """
    faults: dict[str, str] = {}
    if not spec.strip():
        return faults
    for item in spec.split(","):
        service, equals, kind = (part.strip() for part in item.partition("="))
        if not (equals and service and kind):
            raise ValueError(f"bad fault {item.strip()!r} in {spec!r}: expected service=kind, e.g. 'reviews=timeout'")
        if service in faults:
            raise ValueError(f"service {service!r} is given twice in fault spec {spec!r}")
        _check_fault(service, kind)
        faults[service] = kind
    return faults


def _check_fault(service: str, kind: str) -> None:
    if service not in SERVICES:
        raise ValueError(f"unknown demo service {service!r}; expected one of: {', '.join(SERVICES)}")
    if kind not in FAULT_KINDS and _fault_status(kind) is None:
        raise ValueError(
            f"unknown fault kind {kind!r} for service {service!r}; "
            f"expected one of: {', '.join(FAULT_KINDS)}, or an HTTP status from 400 to 599"
        )


def _fault_status(kind: str) -> int | None:
    if len(kind) == 3 and kind.isascii() and kind.isdigit() and 400 <= int(kind) <= 599:
        return int(kind)
    return None


def _no_faults() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """How the demo upstreams behave: base latency ``latency_ms`` (each endpoint sleeps a multiple of it) and
    ``faults``, a service name -> fault kind mapping as produced by ``parse_faults``."""

    latency_ms: float = 100.0
    faults: Mapping[str, str] = field(default_factory=_no_faults)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.latency_ms) and self.latency_ms >= 0):
            raise ValueError(f"latency_ms must be a finite number >= 0, not {self.latency_ms!r}")
        for service, kind in self.faults.items():
            _check_fault(service, kind)
        # Copy, then freeze: a frozen dataclass should not change because the caller's dict did.
        object.__setattr__(self, "faults", MappingProxyType(dict(self.faults)))


@dataclass
class DemoStats:
    """Counters that let tests see what the upstreams saw: concurrency, disconnects, request ids."""

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    disconnects: int = 0
    request_ids: deque[tuple[str, str | None]] = field(default_factory=lambda: deque(maxlen=REQUEST_ID_HISTORY))
    # The same per service (the path's first segment): calls, and the most in flight at once.
    service_requests: Counter[str] = field(default_factory=Counter)
    service_in_flight: Counter[str] = field(default_factory=Counter)
    service_max_in_flight: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        """Forget everything but the requests still running, so ``in_flight`` stays true when they finish."""
        self.requests = 0
        self.max_in_flight = self.in_flight
        self.disconnects = 0
        self.request_ids.clear()
        self.service_requests.clear()
        self.service_max_in_flight = Counter(self.service_in_flight)

    @contextmanager
    def track(self, *, path: str, request_id: str | None) -> Iterator[None]:
        service = path.split("/", 2)[1] if path.count("/") >= 1 else ""
        self.requests += 1
        self.request_ids.append((path, request_id))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.service_requests[service] += 1
        self.service_in_flight[service] += 1
        self.service_max_in_flight[service] = max(self.service_max_in_flight[service], self.service_in_flight[service])
        try:
            yield
        finally:
            self.in_flight -= 1
            self.service_in_flight[service] -= 1


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    body: bytes
    content_type: bytes = _JSON
    headers: Headers = ()


def _json(status: int, payload: object) -> _Response:
    return _Response(status=status, body=orjson.dumps(payload))


def _not_found(detail: str | None = None) -> _Response:
    return _json(404, {"error": "not_found"} if detail is None else {"error": "not_found", "detail": detail})


_METHOD_NOT_ALLOWED: Final = _Response(
    status=405, body=orjson.dumps({"error": "method_not_allowed"}), headers=((b"allow", b"GET"),)
)


@dataclass(frozen=True, slots=True)
class _Call:
    """What an endpoint handler gets: path and query parameters, and the latency it was served after."""

    params: Mapping[str, str]
    query: Mapping[str, str]
    latency_ms: float


@dataclass(frozen=True, slots=True)
class _Route:
    service: str
    pattern: re.Pattern[str]
    latency_factor: float
    handler: Callable[[_Call], _Response]


def _slow_data(call: _Call) -> _Response:
    return _json(200, data.slow_data(call.params["source"], latency_ms=call.latency_ms))


def _product_list(call: _Call) -> _Response:
    try:
        page = _int_param(call.query, "page", default=1, maximum=MAX_PAGE)
        page_size = _int_param(call.query, "page_size", default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    except ValueError as exc:
        return _json(400, {"error": "bad_request", "detail": str(exc)})
    return _json(200, data.products_page(page=page, page_size=page_size))


def _int_param(query: Mapping[str, str], name: str, *, default: int, maximum: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    # isdigit() before int(): int() also takes " 7", "+7" and "1_0", which a real API would refuse.
    if text.isascii() and text.isdigit() and len(text) <= len(str(maximum)) and 1 <= int(text) <= maximum:
        return int(text)
    raise ValueError(f"{name} must be an integer from 1 to {maximum}, not {text!r}")


def _product_detail(call: _Call) -> _Response:
    text = call.params["product_id"]
    product_id = _path_id(text)
    found = data.product(product_id) if product_id is not None else None
    return _found_or_404(found, f"no product with id {text!r}")


def _stock(call: _Call) -> _Response:
    sku = call.params["sku"]
    found = data.stock(sku)
    return _found_or_404(found, f"no stock for sku {sku!r}")


def _stock_batch(call: _Call) -> _Response:
    """`GET /stock?skus=a,b,c`: the stock of every SKU it knows, as `{"items": [...]}`; unknown ones are left out."""
    skus = [sku for sku in call.query.get("skus", "").split(",") if sku]
    if not skus or len(skus) > MAX_BATCH_KEYS:
        return _json(400, {"error": "bad_request", "detail": f"skus must name 1 to {MAX_BATCH_KEYS} SKUs"})
    return _json(200, {"items": data.stocks(skus)})


def _review_summary(call: _Call) -> _Response:
    text = call.params["product_id"]
    product_id = _path_id(text)
    found = data.review_summary(product_id) if product_id is not None else None
    return _found_or_404(found, f"no product with id {text!r}")


def _fx_rates(call: _Call) -> _Response:
    base = call.params["base"]
    found = data.fx_rates(base)
    return _found_or_404(found, f"no rates for base currency {base!r}")


def _found_or_404(found: Any, detail: str) -> _Response:
    return _json(200, found) if found is not None else _not_found(detail)


def _path_id(text: str) -> int | None:
    """A product id as written canonically in a path ("7", not "07" or "+7"), else None."""
    if text.isascii() and text.isdigit() and not text.startswith("0") and len(text) <= 9:
        return int(text)
    return None


def _route(service: str, path: str, latency_factor: float, handler: Callable[[_Call], _Response]) -> _Route:
    return _Route(service, re.compile(path), latency_factor, handler)


_ROUTES: Final = (
    _route("slow", r"/slow/(?P<source>slow_data|slow_data_1)", 1.0, _slow_data),
    _route("slow", r"/slow/(?P<source>slow_data_2)", 1.5, _slow_data),
    _route("slow", r"/slow/(?P<source>slow_data_3)", 2.0, _slow_data),
    _route("catalog", r"/catalog/products", 0.5, _product_list),
    _route("catalog", r"/catalog/products/(?P<product_id>[^/]+)", 0.5, _product_detail),
    _route("inventory", r"/inventory/stock/(?P<sku>[^/]+)", 0.3, _stock),
    _route("inventory", r"/inventory/stock", 0.3, _stock_batch),
    _route("reviews", r"/reviews/products/(?P<product_id>[^/]+)/summary", 0.8, _review_summary),
    _route("fx", r"/fx/rates/(?P<base>[^/]+)", 0.2, _fx_rates),
)
# An upstream declared with a demo (upstreams/declared.py) has routes here, and nothing else does.
if {route.service for route in _ROUTES} != set(SERVICES):
    raise ImportError(f"the demo's routes serve {sorted({r.service for r in _ROUTES})}, declared: {sorted(SERVICES)}")


def _resolve(path: str) -> tuple[_Route, Mapping[str, str]] | None:
    for route in _ROUTES:
        if match := route.pattern.fullmatch(path):
            return route, match.groupdict()
    return None


def demo_payload(service: str, path: str, query: Mapping[str, str] | None = None) -> Any:
    """The JSON the demo `service` answers to `GET /<service>/<path>`, without latency or faults: realistic values
    for documentation examples. `LookupError` when the demo has no such resource (or no such service)."""
    resolved = _resolve(f"/{service}/{path}")
    if resolved is None:
        raise LookupError(f"the demo serves no /{service}/{path}")
    route, params = resolved
    response = route.handler(_Call(params=params, query=dict(query or {}), latency_ms=0.0))
    if response.status != 200:
        raise LookupError(f"the demo answers /{service}/{path} with {response.status}")
    return orjson.loads(response.body)


class DemoApp:
    """The ASGI 3 application: serves ``http`` scopes, completes ``lifespan`` and ignores anything else."""

    def __init__(self, options: DemoOptions | None = None) -> None:
        self.options = options if options is not None else DemoOptions()
        self.stats = DemoStats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _serve_lifespan(receive, send)
        elif scope["type"] == "http":
            path: str = scope["path"]
            with self.stats.track(path=path, request_id=_header(scope, b"x-request-id")):
                await self._serve_http(scope, receive, send)

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolved = _resolve(scope["path"])
        if resolved is None:
            await _send_response(send, _not_found())
            return
        if scope["method"] != "GET":
            await _send_response(send, _METHOD_NOT_ALLOWED)
            return
        route, params = resolved
        fault = self.options.faults.get(route.service)
        if fault == "timeout":
            await self._never_answer(receive, send)
            return
        latency_ms = round(self.options.latency_ms * route.latency_factor, 3)
        if fault == "slow":
            latency_ms *= SLOW_FAULT_FACTOR
        if await _disconnected_within(latency_ms / 1000, receive):
            self.stats.disconnects += 1
            return
        if fault is None or fault == "slow":
            await _send_response(send, route.handler(_Call(params, _query(scope), latency_ms)))
        else:
            await _send_fault(send, fault)

    async def _never_answer(self, receive: Receive, send: Send) -> None:
        if await _disconnected_within(TIMEOUT_FAULT_CAP_S, receive):
            self.stats.disconnects += 1
        else:
            await _send_response(send, _json(504, {"error": "injected", "status": 504}))


async def _send_fault(send: Send, fault: str) -> None:
    if fault == "huge":
        await _send_huge(send)
    elif fault == "reset":
        await _send_reset(send)
    elif fault == "invalid_json":
        await _send_response(send, _Response(status=200, body=b'{"broken": '))
    elif fault == "wrong_shape":
        await _send_response(send, _json(200, _WRONG_SHAPE))
    elif fault == "html":
        await _send_response(send, _Response(status=200, body=b"<html>oops</html>", content_type=_HTML))
    elif (status := _fault_status(fault)) is not None:
        response = _json(status, {"error": "injected", "status": status})
        if status in (429, 503):  # as real rate limiters and maintenance pages do: say when to come back
            response = replace(response, headers=((b"retry-after", b"1"),))
        await _send_response(send, response)
    else:  # DemoOptions validated the faults, so this is a bug here, not bad input.
        raise AssertionError(f"unhandled fault kind {fault!r}")


async def _send_response(send: Send, response: _Response) -> None:
    await _send_start(send, response.status, len(response.body), response.content_type, response.headers)
    await send({"type": "http.response.body", "body": response.body})


async def _send_start(send: Send, status: int, length: int, content_type: bytes = _JSON, headers: Headers = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(length).encode()), *headers],
        }
    )


async def _send_huge(send: Send) -> None:
    await _send_start(send, 200, _HUGE_LENGTH)
    await send({"type": "http.response.body", "body": _HUGE_HEAD, "more_body": True})
    for _ in range(_HUGE_CHUNKS):
        await send({"type": "http.response.body", "body": _HUGE_CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": _HUGE_TAIL})


async def _send_reset(send: Send) -> None:
    # Promise more than is sent, then fail: an ASGI server can only answer that by closing the connection.
    await _send_start(send, 200, _RESET_PROMISED_LENGTH)
    await send({"type": "http.response.body", "body": _RESET_SENT, "more_body": True})
    raise InjectedReset(f"injected reset after {len(_RESET_SENT)} of {_RESET_PROMISED_LENGTH} bytes")


async def _disconnected_within(seconds: float, receive: Receive) -> bool:
    """Wait ``seconds``; True as soon as the client disconnects, False if it is still there at the end."""
    if seconds <= 0:
        return False
    try:
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass  # request body chunks: a GET has nothing worth reading
    except TimeoutError:
        return False
    return True


async def _serve_lifespan(receive: Receive, send: Send) -> None:
    # Nothing to set up, but servers running with lifespan "on" wait for these answers.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _query(scope: Scope) -> dict[str, str]:
    # Last value wins for a repeated parameter, as in Django's QueryDict.get.
    return dict(parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1"), keep_blank_values=True))
