"""Async-native middleware. Django wraps a sync-only middleware in a thread hop per request; these need none.

`SecurityMiddleware` and `FrameOptionsMiddleware` replace the request path of Django's own (Django 5.2's
`MiddlewareMixin.__acall__`, which runs `process_request`/`process_response` through `sync_to_async`): they call the
same inherited methods inline, on the loop (the methods do no I/O). tests/api/test_security.py pins them against
Django's classes, request by request and setting by setting, and runs Django's own tests of the two classes
(tests/middleware/ of the installed version's sdist) against them. Django's deploy checks look for Django's class
paths in MIDDLEWARE; `recognise_in_deploy_checks()` (called by the app's `ready()`) makes them see these subclasses
too, so `check --deploy` still checks HSTS, the redirect and the rest.

`ObservabilityMiddleware`, outermost, measures each request once (route pattern, status, duration, client, the
upstream calls it made) and hands that `RequestRecord` to the observers `settings.REQUEST_OBSERVERS` names: the
access log line (config/logging.py), Prometheus (config/metrics.py), the server span's name (config/tracing.py).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import markcoroutinefunction
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware as DjangoSecurityMiddleware
from django.utils.module_loading import import_string
from whitenoise.middleware import WhiteNoiseMiddleware

from upstreams import REQUEST_ID_HEADER, CallRecord, incoming_headers, request_calls, request_id

from .observe import RequestObserver, RequestRecord
from .problems import problem_response

__all__ = [
    "FrameOptionsMiddleware",
    "ObservabilityMiddleware",
    "RequestContextMiddleware",
    "SecurityMiddleware",
    "StaticFilesMiddleware",
    "recognise_in_deploy_checks",
]

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]

# The status recorded for a request whose client went away before it was answered (nginx's convention).
CLIENT_CLOSED = 499

# A client-supplied id is kept only if it is short and plain: it ends up in logs and upstream headers.
_REQUEST_ID_META = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ObservabilityMiddleware:
    """Outermost: times every request (the 400 for a bad Host and the 413 for a refused body included), collects
    the upstream calls it makes (`upstreams.request_calls`), and reports a `RequestRecord` to each observer."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.observers: tuple[RequestObserver, ...] = tuple(
            import_string(path)() for path in getattr(settings, "REQUEST_OBSERVERS", ())
        )
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        began = time.perf_counter()
        calls: list[CallRecord] = []
        token = request_calls.set(calls)
        for observer in self.observers:
            observer.started(request)
        response: HttpResponseBase | None = None
        try:
            response = await self.get_response(request)
            return response
        finally:
            # Also when the request is cancelled (the client went away: Django cancels the view), so nothing that
            # counted it in (requests in flight) misses its end: it is recorded as 499, nginx's "client closed".
            request_calls.reset(token)
            record = RequestRecord(
                method=request.method or "GET",
                route=route_of(request),
                status=response.status_code if response is not None else CLIENT_CLOSED,
                seconds=time.perf_counter() - began,
                client=client_of(request),
                request_id=response.get(REQUEST_ID_HEADER, "-") if response is not None else "-",
                calls=calls,
            )
            for observer in self.observers:
                observer.finished(request, response, record)


def client_of(request: HttpRequest) -> str:
    """The authenticated caller's client name (DRF copies `request.auth` onto the Django request), or "anonymous"."""
    name = getattr(getattr(request, "auth", None), "client_name", None)
    return name if isinstance(name, str) and name else "anonymous"


_ROUTES: dict[str, str] = {}
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def route_of(request: HttpRequest) -> str:
    """The matched URL pattern as a label of bounded cardinality: `/api/products/{id}/` for `/api/products/7/`."""
    match = getattr(request, "resolver_match", None)
    pattern: Any = getattr(match, "route", None)
    if not pattern or not isinstance(pattern, str):
        return "unmatched"
    route = _ROUTES.get(pattern)
    if route is None:
        cleaned = _GROUP.sub(r"{\1}", pattern).replace("^", "").replace("$", "")
        route = _ROUTES[pattern] = "/" + cleaned if cleaned else "unmatched"
    return route


class RequestContextMiddleware:
    """The request's context, before anything else runs.

    - Takes the client's `X-Request-ID` (or makes one), exposes it to logs and upstream calls, and returns it.
    - Exposes the request's headers to upstream calls (`request.headers`, already built for the id: one more context
      variable set); each upstream forwards only what its `FORWARD_HEADERS` lists.
    - Checks the Host header against ALLOWED_HOSTS up front: Django checks it lazily, at the first
      `get_host()`, which would otherwise surface as an error in the middle of a view.
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        headers = request.headers
        supplied = request.META.get(_REQUEST_ID_META, "")  # what headers.get() reads, without its look-up
        rid = supplied if _VALID_REQUEST_ID.match(supplied) else new_request_id()
        token = request_id.set(rid)
        headers_token = incoming_headers.set(headers)
        try:
            try:
                request.get_host()
            except DisallowedHost:
                response: HttpResponseBase = problem_response(400, "bad_request", "The Host header is not allowed.")
            else:
                response = await self.get_response(request)
        finally:
            incoming_headers.reset(headers_token)
            request_id.reset(token)
        response[REQUEST_ID_HEADER] = rid
        return response


def new_request_id() -> str:
    """A random UUID (version 4) as 32 hex digits: `uuid.uuid4().hex`, without building a UUID object."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    return raw.hex()


class _OnLoop:
    """Mixed in before a library middleware class: async only, so Django calls `__call__` on the loop directly
    instead of wrapping the class's sync path in a thread hop."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]  # the library class's __init__
        self.next: GetResponse = get_response  # typed as what it is here: the async rest of the chain
        markcoroutinefunction(self)  # type: ignore[type-var]  # the subclass defines the async __call__


class StaticFilesMiddleware(_OnLoop, WhiteNoiseMiddleware):
    """WhiteNoise, async: a static hit is a dictionary look-up; everything else passes straight through."""

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        static_file = self.files.get(request.path_info)
        if static_file is not None:
            return self.serve(static_file, request)
        return await self.next(request)


class SecurityMiddleware(_OnLoop, DjangoSecurityMiddleware):
    """Django's SecurityMiddleware (nosniff, HSTS, the https redirect, Referrer-Policy, COOP), with no thread hop.

    Its response headers depend on the settings only (read once, in `__init__`, as Django's class does), except
    HSTS, which depends on the request: so Django's `process_response` runs once at start-up on an empty response
    to an http request, and the headers it adds are kept and added the same way (where the response has none of
    that name) to every response to an http request. A request that is secure gets Django's own code.
    """

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        probe = HttpResponseBase()
        del probe["Content-Type"]
        DjangoSecurityMiddleware.process_response(self, _PLAIN_HTTP, probe)  # type: ignore[arg-type]
        self.plain_http_headers = tuple(_header_store(probe).items())  # (lower-case name, (name, value))

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:  # type: ignore[override]
        if self.sts_seconds and request.is_secure():
            return super().process_response(request, response)  # type: ignore[arg-type]
        store = _header_store(response)
        for key, header in self.plain_http_headers:
            if key not in store:  # setdefault, as Django's does
                store[key] = header
        return response

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.process_request(request) or await self.next(request)
        # django-stubs say HttpResponse; Django's methods take any response (streamed ones too).
        return self.process_response(request, response)


class _PlainHttpRequest:
    """What Django's `SecurityMiddleware.process_response` asks of a request: whether it came over https."""

    @staticmethod
    def is_secure() -> bool:
        return False


_PLAIN_HTTP = _PlainHttpRequest()


def _header_store(response: HttpResponseBase) -> dict[str, tuple[str, str]]:
    """Django's `ResponseHeaders` store: lower-case name -> (name as set, value), both already validated."""
    store: dict[str, tuple[str, str]] = response.headers._store
    return store


class FrameOptionsMiddleware(_OnLoop, XFrameOptionsMiddleware):
    """Django's XFrameOptionsMiddleware (`X-Frame-Options: DENY` unless exempt), with no thread hop."""

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.process_response(request, await self.next(request))  # type: ignore[arg-type]


def recognise_in_deploy_checks() -> None:
    """Make Django's deploy checks (django/core/checks/security/base.py) count a subclass of its security or
    clickjacking middleware as installed. They test `"django.middleware.security.SecurityMiddleware" in
    MIDDLEWARE`, so with ours they would only warn W001/W002 and skip every check those gate (HSTS, nosniff, the
    redirect, Referrer-Policy, COOP, X-Frame-Options). Idempotent."""
    from django.core.checks.security import base

    if getattr(base, "_tributary_recognises_subclasses", False):
        return
    base._security_middleware = lambda: _installed(DjangoSecurityMiddleware)  # type: ignore[attr-defined]
    base._xframe_middleware = lambda: _installed(XFrameOptionsMiddleware)  # type: ignore[attr-defined]
    base._tributary_recognises_subclasses = True  # type: ignore[attr-defined]


def _installed(middleware: type) -> bool:
    for path in settings.MIDDLEWARE:
        try:
            cls = import_string(path)
        except ImportError:
            continue
        if isinstance(cls, type) and issubclass(cls, middleware):
            return True
    return False
