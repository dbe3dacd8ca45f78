"""Django's ASGI handler without its per-request thread hops.

Django 5.2's `ASGIHandler` runs three sync steps through `sync_to_async` on every request, and each one starts and
joins a thread (inside the request's `ThreadSensitiveContext`):

- `request_started.asend()`: its receivers (`reset_queries`, `close_old_connections`) are sync;
- `sync_to_async(response.close)()` after the response is sent (runs `request_finished` receivers);
- `sync_to_async(log_response)` for every response of status 400 and above.

All three are cheap, non-blocking Python here: the database receivers only touch connections opened *in the calling
thread*, and the event loop thread never opens one (Django forbids database access from async code), so they find
nothing to do; the cache receivers close nothing for local memory; `log_response` formats a log record. Running
them inline on the event loop is both correct and far cheaper than a thread per request.

`_handle()` below is Django 5.2's `handle()`, with exactly those calls made inline (marked `# inline`). Signals keep
Django's semantics without its thread: sync receivers run inline, in order, then async receivers are awaited
concurrently (`Signal.asend` would run the sync ones through `sync_to_async`; `Signal.send` cannot run async ones
inside an event loop at all). One hop is kept, on a client disconnect only: the request body is closed through the
request's thread-sensitive executor, so sync view code still running there never finds it closed (Django gets that
ordering from `asend`'s hop; its test_cancel_post_request_with_sync_processing pins it). Django is pinned to 5.2.x in
pyproject.toml; `tests/test_thread_hops.py` fails if a hop comes back, and
tests/framework/test_django_handler_suite.py runs Django's own `tests/asgi/` and `tests/handlers/` against this
handler (the tests that do not apply are listed there, with the reason).

One addition Django does not have: a request body over `settings.MAX_REQUEST_BODY_BYTES` is refused with a 413
problem document without being read (a declared `Content-Length` is checked before any byte; a chunked body is read
only up to the limit). The 413 passes through the middleware (request id, Host check) like any response. Unset, the
limit is off (stock behaviour).

The database's per-request receivers are disconnected as well: on the loop they would only walk the loop thread's
connection list, which is empty (Django forbids database access from the event loop). A request that reached the
database through its thread (Django's async ORM, `api.database.arun`) gets Django's `close_old_connections` in that
thread at its end (`release_request_thread`, one hop, only for such requests); native reads (api/database.py) use
no thread and pay nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from typing import IO, Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import close_old_connections, reset_queries
from django.dispatch import Signal
from django.dispatch.dispatcher import NO_RECEIVERS
from django.http import HttpRequest, HttpResponseBase
from django.urls import ResolverMatch, set_script_prefix, set_urlconf
from django.utils.log import log_response

__all__ = ["TributaryASGIHandler"]


class TributaryASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        signals.request_started.disconnect(reset_queries)
        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await self._handle(scope, receive, send)
        finally:
            await release_request_thread()

    async def _handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        limit = getattr(settings, "MAX_REQUEST_BODY_BYTES", None)
        refused = limit is not None and _declared_length(scope) > limit
        try:
            body_file = _empty_body() if refused else await self.read_body(receive, limit=limit)
        except RequestAborted:
            return
        except _BodyTooLarge:
            refused, body_file = True, _empty_body()
        set_script_prefix(get_script_prefix(scope))
        await send_on_loop(signals.request_started, sender=self.__class__, scope=scope)  # inline
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # create_request returns one or the other
            body_file.close()
            await self.send_response(error_response, send)
            await close_on_loop(error_response)  # inline
            return
        if refused:
            # Answered without listening for a disconnect: that would mean reading the body we refused.
            request.body_refused = True  # type: ignore[attr-defined]
            response = await self.run_get_response(request)
            await self.send_response(response, send)
            await close_on_loop(response)
            body_file.close()
            return

        async def process_request(request: HttpRequest, send: Any) -> HttpResponseBase:
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client disconnected during send_response
                await self.send_response(response, send)
            return response

        # Serve the request while listening for a disconnect, which cancels the view (and its upstream calls).
        serving = asyncio.create_task(process_request(request, send))
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(self.listen_for_disconnect(receive)), serving]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = serving.result()
        except asyncio.CancelledError:
            await send_on_loop(signals.request_finished, sender=self.__class__)  # inline
            # The only hop left, on a client disconnect only: closing the body through the request's thread-sensitive
            # executor waits for sync view code of this request still running there (Django's `asend` gives the
            # same barrier as a side effect), so it never finds its body closed under it.
            await sync_to_async(body_file.close)()
            return
        await close_on_loop(response)  # inline
        body_file.close()

    async def read_body(self, receive: Any, limit: int | None = None) -> IO[bytes]:
        """Django's `read_body`, stopping (with `_BodyTooLarge`) as soon as more than `limit` bytes arrived."""
        body_file = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")  # noqa: SIM115 - returned open, as Django does
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted
            if "body" in message:
                received += len(message["body"])
                if limit is not None and received > limit:
                    body_file.close()
                    raise _BodyTooLarge
                body_file.write(message["body"])
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        if getattr(request, "body_refused", False):
            request.resolver_match = ResolverMatch(_body_too_large, (), {})
            return request.resolver_match
        return super().resolve_request(request)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        set_urlconf(settings.ROOT_URLCONF)
        response: HttpResponseBase = await self._middleware_chain(request)  # type: ignore[attr-defined]
        response._resource_closers.append(request.close)  # type: ignore[attr-defined]
        if response.status_code >= 400:
            log_response(  # inline
                "%s: %s",
                response.reason_phrase,
                request.path,
                response=response,  # type: ignore[arg-type]  # any HttpResponseBase works; the stub is narrow
                request=request,
            )
        return response


async def release_request_thread() -> None:
    """Django's end-of-request `close_old_connections`, in the request's own thread, for a request that has one.

    Database connections belong to a thread. Code that reached the database through `sync_to_async` (Django's async
    ORM, `api.database.arun`) did it in this request's thread (its `ThreadSensitiveContext`); Django's handler closes
    them there, in its `request_finished` hop, but ours sends that signal on the loop, where no connection is. So a
    request that started a thread makes one more hop into it, and its connections go back to the pool (without it
    each such request kept one until DATABASE_POOL_MAX_SIZE requests had exhausted the pool); a request that never
    left the loop (upstream-only endpoints, native reads: api/database.py) pays nothing.
    """
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is not None and context in SyncToAsync.context_to_thread_executor:
        await sync_to_async(close_old_connections)()


async def send_on_loop(signal: Signal, sender: Any, **named: Any) -> list[tuple[Any, Any]]:
    """`Signal.send` for the event loop: sync receivers inline and in order, then the async ones awaited together.

    The order and the concurrency are `Signal.send`'s (and `asend`'s); only the thread is gone.
    """
    if not signal.receivers or signal.sender_receivers_cache.get(sender) is NO_RECEIVERS:
        return []
    sync_receivers, async_receivers = signal._live_receivers(sender)
    responses = [(receiver, receiver(signal=signal, sender=sender, **named)) for receiver in sync_receivers]
    if async_receivers:
        results = await asyncio.gather(
            *(receiver(signal=signal, sender=sender, **named) for receiver in async_receivers)
        )
        responses.extend(zip(async_receivers, results, strict=True))
    return responses


async def close_on_loop(response: HttpResponseBase) -> None:
    """`HttpResponseBase.close()` with its `request_finished` signal sent on the loop (the stock `close()` sends it with
    `Signal.send`, which cannot run an async receiver inside an event loop)."""
    if type(response).close is not HttpResponseBase.close:
        response.close()  # a subclass with its own close(): trust it
        return
    for closer in response._resource_closers:  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):  # as HttpResponseBase.close() does
            closer()
    response._resource_closers.clear()  # type: ignore[attr-defined]
    response.closed = True
    await send_on_loop(signals.request_finished, sender=response._handler_class)  # type: ignore[attr-defined]


class _BodyTooLarge(Exception):
    pass


def _declared_length(scope: dict[str, Any]) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the server rejects a malformed Content-Length before it reaches us
    return 0


def _empty_body() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=0, mode="w+b")


async def _body_too_large(request: HttpRequest) -> HttpResponseBase:
    from api.problems import problem_response

    limit = getattr(settings, "MAX_REQUEST_BODY_BYTES", None)
    return problem_response(
        413,
        "request_body_too_large",
        f"This service accepts request bodies of at most {limit} bytes.",
        headers={"Connection": "close"},  # the rest of the body is never read: the connection cannot be reused
    )
