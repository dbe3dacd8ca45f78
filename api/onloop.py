"""`OnLoopAPIView`: adrf's `APIView` with its dispatch kept on the event loop (no thread hop per request).

Replaces adrf 0.1.14's `APIView.async_dispatch` and its authentication, permission and throttle checks (and, for
rendering, Django's threaded rendering of a DRF `Response`). adrf runs `initial()` through `sync_to_async` and reaches
async classes with `async_to_sync`; here `ainitial()` runs on the loop and awaits them: an `authenticate`,
`has_permission`, `has_object_permission`, `allow_request` or `wait` may be a coroutine function or a plain one, and
lists may mix both. The semantics are DRF's `APIView`'s: authenticators tried in order until one returns a user;
permissions checked in order, the first that denies gives the 403's message and code (adrf checks its async
permissions before its sync ones, concurrently); every throttle is asked, and the longest `wait()` becomes
`Retry-After`. Sync classes run inline on the loop, so they must not block (Django refuses database access there).
The sync `check_permissions`/`check_object_permissions`/`check_throttles` await an async class through
`async_to_sync` when called from a worker thread (as adrf's do), and refuse it (TypeError) on the event loop's thread
rather than read its coroutine as "allowed". Pinned by tests/framework/adrf/ (adrf's own tests, vendored, run
against this view) and tests/api/test_onloop.py.

Once the view has answered, `_break_cycles` cuts the reference cycles DRF, adrf and Django leave between the view and
the request (tests/config/test_request_cycles.py), so a request's objects are freed as soon as it is answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from inspect import isawaitable, iscoroutinefunction
from types import MethodType
from typing import Any, TypeVar

from adrf.views import APIView
from asgiref.sync import async_to_sync
from django.http import HttpResponse, HttpResponseBase
from rest_framework import exceptions
from rest_framework.request import Request, wrap_attributeerrors
from rest_framework.response import Response

__all__ = ["OnLoopAPIView"]


class OnLoopAPIView(APIView):
    """adrf's dispatch, minus its thread hops.

    adrf runs `initial()` (content negotiation, authentication, permission and throttle checks) through
    `sync_to_async`, and Django renders a DRF `Response` in another thread. Here `ainitial()` runs on the event loop
    (awaiting async checks), and the view returns an already rendered plain `HttpResponse`.
    """

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # Every view here is async. adrf's dispatch recomputes `view_is_async` (an inspection of every class
        # member) on each request to decide; that was 9% of a request's CPU.
        return self.async_dispatch(request, *args, **kwargs)

    async def async_dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self.args = args
        self.kwargs = kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            try:
                await self.ainitial(request, *args, **kwargs)
                method = request.method.lower()
                handler = getattr(self, method, None) if method in self.http_method_names else None
                handler = handler or self.http_method_not_allowed
                response = (
                    await handler(request, *args, **kwargs)
                    if iscoroutinefunction(handler)
                    else handler(request, *args, **kwargs)
                )
            except Exception as exc:  # noqa: BLE001 - DRF's contract: every exception goes to handle_exception()
                response = self.handle_exception(exc)
                _release_frames(exc)
            response = self.finalize_response(request, response, *args, **kwargs)
            if isinstance(response, Response):
                response = _rendered(response)
            self.response = response
            return response
        finally:
            _break_cycles(self, request)

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        # JSON is the only renderer, so negotiation is one question: does the Accept header admit JSON? A client
        # that asks for `application/problem+json` reads JSON, so it counts. `?format=` is no parameter of this API
        # and is ignored like any unknown one (DRF's negotiation answers 404 for a format without a renderer). The
        # common headers are decided without parsing.
        if len(self.renderer_classes) != 1:
            return super().perform_content_negotiation(request, force)
        renderer = self.renderer_classes[0]()
        if request._request.META.get("HTTP_ACCEPT") in _ACCEPTS_JSON or force or _admits_json(request._request):
            return renderer, renderer.media_type
        raise exceptions.NotAcceptable(available_renderers=[renderer])

    async def ainitial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """DRF's `initial()`, with the authentication, permission and throttle checks awaited."""
        self.format_kwarg = self.get_format_suffix(**kwargs)
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(request)
        request.version, request.versioning_scheme = self.determine_version(request, *args, **kwargs)
        await self.aperform_authentication(request)
        await self.acheck_permissions(request)
        await self.acheck_throttles(request)

    async def aperform_authentication(self, request: Request) -> None:
        """DRF's `Request._authenticate()`: the first authenticator that returns a (user, auth) pair wins; one that
        raises an API error ends the search (the request is left unauthenticated)."""
        for authenticator in request.authenticators or ():
            try:
                with wrap_attributeerrors():
                    user_auth = await _resolved(authenticator.authenticate(request))
            except exceptions.APIException:
                request._not_authenticated()  # type: ignore[attr-defined]
                raise
            if user_auth is not None:
                request._authenticator = authenticator  # type: ignore[attr-defined]
                request.user, request.auth = user_auth  # type: ignore[assignment]  # the stub types the pair too narrowly
                return
        request._not_authenticated()  # type: ignore[attr-defined]

    async def acheck_permissions(self, request: Request) -> None:
        for permission in self.get_permissions():
            allowed = permission.has_permission(request, self)
            if isawaitable(allowed):  # inline rather than _resolved(): this runs on every request
                allowed = await allowed
            if not allowed:
                self._deny(request, permission)

    async def acheck_object_permissions(self, request: Request, obj: Any) -> None:
        for permission in self.get_permissions():
            if not await _resolved(permission.has_object_permission(request, self, obj)):
                self._deny(request, permission)

    async def acheck_throttles(self, request: Request) -> None:
        durations = []
        for throttle in self.get_throttles():
            if not await _resolved(throttle.allow_request(request, self)):
                durations.append(await _resolved(throttle.wait()))
        if durations:
            # None (a throttle that cannot tell) is left out, as DRF does (encode/django-rest-framework#1438).
            self.throttled(request, max((d for d in durations if d is not None), default=None))

    # DRF's sync checks, for code that calls them directly (DRF's `get_object()` calls `check_object_permissions`).
    # adrf's versions reach async classes through async_to_sync, which cannot run inside the event loop; DRF's would
    # read an async check's coroutine as "allowed". These refuse it instead: await the `a...` version.
    def check_permissions(self, request: Request) -> None:
        for permission in self.get_permissions():
            if not _sync_result(permission.has_permission(request, self), "acheck_permissions"):
                self._deny(request, permission)

    def check_object_permissions(self, request: Request, obj: Any) -> None:
        for permission in self.get_permissions():
            if not _sync_result(permission.has_object_permission(request, self, obj), "acheck_object_permissions"):
                self._deny(request, permission)

    def check_throttles(self, request: Request) -> None:
        durations = []
        for throttle in self.get_throttles():
            if not _sync_result(throttle.allow_request(request, self), "acheck_throttles"):
                durations.append(_sync_result(throttle.wait(), "acheck_throttles"))
        if durations:
            self.throttled(request, max((d for d in durations if d is not None), default=None))

    def _deny(self, request: Request, permission: Any) -> None:
        self.permission_denied(
            request, message=getattr(permission, "message", None), code=getattr(permission, "code", None)
        )


_T = TypeVar("_T")


async def _resolved(result: _T | Awaitable[_T]) -> _T:
    """A check's answer, awaited if the check is async (a coroutine function, or a sync one returning an awaitable)."""
    if isawaitable(result):
        return await result
    return result


def _sync_result(result: Any, async_version: str) -> Any:
    """A check's answer in a sync caller: awaited through `async_to_sync` in a worker thread (as adrf does, e.g. under
    `sync_to_async`); refused on the event loop's thread, where `async_to_sync` cannot run."""
    if not isawaitable(result):
        return result
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return async_to_sync(_resolved)(result)
    close = getattr(result, "close", None)
    if close is not None:
        close()  # never awaited: no "coroutine was never awaited" warning
    msg = f"an async check cannot run in a sync one on the event loop: await OnLoopAPIView.{async_version}()"
    raise TypeError(msg)


def _break_cycles(view: APIView, request: Request) -> None:
    """Cut the reference cycles DRF, adrf and Django build around a view, once it has answered, so the request's
    objects are freed as soon as the response is sent instead of waiting for the cyclic garbage collector.

    DRF's `Request` keeps its parser context, which holds the view and the request itself (`get_parser_context`,
    `Request.__init__`); adrf's `ViewSetMixin.as_view` binds the actions to the instance (`view.get = view.list`),
    and Django's `View.setup` binds `view.head = view.get`. Each is a cycle through the view, the DRF request, the
    Django request and everything they hold (~90 objects per request). Both are only used while the view runs: the
    parsers read the context during `request.data`, the bound methods are the dispatch targets.
    """
    context = request.parser_context
    if context:
        context.pop("view", None)
        context.pop("request", None)
    attributes = view.__dict__
    for name in [name for name, value in attributes.items() if type(value) is MethodType and value.__self__ is view]:
        del attributes[name]


def _release_frames(exc: BaseException) -> None:
    """Drop the tracebacks of an exception that has been answered (and of the exceptions it was raised from or
    during), so the frames they hold, and the requests and views in those frames, are freed with it.

    Code that catches an exception often keeps it, or something holding it, in a frame its traceback holds (`except
    X as e: errors = e.detail`, an upstream failure kept for the missing-parts list): a reference cycle through the
    frames that only the cyclic garbage collector would free. By now the exception has been logged (with its
    traceback) and turned into a response; nothing reads its traceback afterwards.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        error.__traceback__ = None
        pending += (error.__cause__, error.__context__, *getattr(error, "exceptions", ()))


_ACCEPTS_JSON = frozenset({None, "", "*/*", "application/json"})
_JSON_RANGES = frozenset({("*", "*"), ("application", "*"), ("application", "json"), ("application", "problem+json")})


def _admits_json(request: Any) -> bool:
    """A media range in Accept (quality above 0; parameters such as charset do not matter) covers JSON."""
    return any((media.main_type, media.sub_type) in _JSON_RANGES for media in request.accepted_types)


def _rendered(response: Response) -> HttpResponseBase:
    response.render()
    plain = HttpResponse(response.content, status=response.status_code)
    for header, value in response.items():
        plain[header] = value
    response.renderer_context = None  # type: ignore[attr-defined]  # DRF put the response in it (a cycle)
    return plain
