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

One more departure, for the cost of a request: Django serves the view in a second task and waits for the first of
it and a disconnect listener (`asyncio.wait`); here the view runs in the request's own task, and the listener cancels
that task when the client goes away while it is being served (a disconnect during `send_response` is ignored, as in
Django; an unexpected message still raises Django's AssertionError). The listener returns at the disconnect instead
of raising `RequestAborted`: uvicorn answers `receive()` with a disconnect once the response is complete, so
Django's listener raised on every request, and the exception's traceback held the handler's frame in a reference
cycle (the request and all it holds waited for the cyclic garbage collector). Pinned by Django's own tests as
above (disconnects before, during and after the view, a sync view still running after a disconnect) and
tests/config/test_request_cycles.py.

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
import io
import tempfile
from typing import IO, Any

from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
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

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Django's `__call__`: the request in its own `ThreadSensitiveContext`, entered and left without the async
        context manager's two coroutines when the request started no thread (asgiref's own `__aexit__` otherwise).
        """
        if scope["type"] != "http":
            raise ValueError("Django can only handle ASGI/HTTP connections, not %s." % scope["type"])  # noqa: UP031 - Django's words
        if SyncToAsync.thread_sensitive_context.get(None) is not None:
            await self.handle(scope, receive, send)  # inside another one, which ThreadSensitiveContext would keep
            return
        context = ThreadSensitiveContext()
        context.token = SyncToAsync.thread_sensitive_context.set(context)  # what its __aenter__ does
        try:
            await self.handle(scope, receive, send)
        finally:
            if _no_request_thread_anywhere():
                SyncToAsync.thread_sensitive_context.reset(context.token)  # what its __aexit__ does then
                context.token = None
            else:
                await context.__aexit__(None, None, None)  # type: ignore[no-untyped-call]

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await self._handle(scope, receive, send)
        finally:
            if _has_request_thread():  # checked here: an await of a coroutine that does nothing costs a frame
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

        # Serve the request in this task while another listens for a disconnect, which cancels the view (and its
        # upstream calls) as Django's does. Django serves in a second task and waits for the first of the two.
        watch = _DisconnectWatch(asyncio.current_task())
        listener = asyncio.create_task(_disconnected(receive))
        listener.add_done_callback(watch.listener_done)
        try:
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client disconnected during send_response
                await self.send_response(response, send)
        except asyncio.CancelledError:
            if not watch.ended():
                raise  # not the disconnect's: whoever cancelled this task wants it to end
            if _listener_failed(listener, body_file):
                raise listener.exception() from None  # type: ignore[misc]  # its AssertionError, as Django's raises
            await send_on_loop(signals.request_finished, sender=self.__class__)  # inline
            # The only hop left, on a client disconnect only: closing the body through the request's thread-sensitive
            # executor waits for sync view code of this request still running there (Django's `asend` gives the
            # same barrier as a side effect), so it never finds its body closed under it.
            await sync_to_async(body_file.close)()
            return
        finally:
            listener.remove_done_callback(watch.listener_done)
            listener.cancel()  # nothing to listen for any more (a no-op once it has ended)
        watch.ended()  # a disconnect during send_response is ignored, as Django's handler does
        if _listener_failed(listener, body_file):
            raise listener.exception()  # type: ignore[misc]
        await close_on_loop(response)  # inline
        body_file.close()

    async def read_body(self, receive: Any, limit: int | None = None) -> IO[bytes]:
        """Django's `read_body`, stopping (with `_BodyTooLarge`) as soon as more than `limit` bytes arrived.

        A request without a body (a GET's: one message, empty, no more to come) gets an empty in-memory file
        instead of a `SpooledTemporaryFile` that would never roll over (a tenth of the cost); it reads, seeks and
        closes the same.
        """
        message = await receive()
        if message["type"] != "http.disconnect" and not message.get("body") and not message.get("more_body", False):
            return io.BytesIO()
        body_file = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")  # noqa: SIM115 - returned open, as Django does
        received = 0
        while True:
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
            message = await receive()
        body_file.seek(0)
        return body_file

    async def send_response(self, response: HttpResponseBase, send: Any) -> None:
        """Django's `send_response`, quicker for the common response: no cookies, a body of one chunk.

        The headers are read from the response's header store (original name, value: both validated as Django
        stores them) instead of through the `Mapping` interface, which looks each name up again; anything else
        (cookies, a streamed or a longer body, a response class with its own `items()`) is Django's own code.
        Pinned by Django's tests/asgi (tests/framework) and tests/config/test_send_response.py.
        """
        if response.streaming or response.cookies or type(response).items is not HttpResponseBase.items:
            return await super().send_response(response, send)
        content: bytes = response.content  # type: ignore[attr-defined]  # not streaming: an HttpResponse
        if len(content) > self.chunk_size:
            return await super().send_response(response, send)
        headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in _header_pairs(response)]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": content, "more_body": False})
        return None

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
    if _has_request_thread():
        await sync_to_async(close_old_connections)()


def _has_request_thread() -> bool:
    if _no_request_thread_anywhere():
        return False
    context = SyncToAsync.thread_sensitive_context.get(None)
    return context is not None and context in SyncToAsync.context_to_thread_executor


def _no_request_thread_anywhere() -> bool:
    """No request of this process has a thread now (the common case: a look-up of the request's own would make
    a weak reference)."""
    return not SyncToAsync.context_to_thread_executor


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


def _header_pairs(response: HttpResponseBase) -> Any:
    """(name as set, value) of each header: what `response.items()` yields, without a look-up per name."""
    return response.headers._store.values()  # CaseInsensitiveMapping's store


class _BodyTooLarge(Exception):
    pass


async def _disconnected(receive: Any) -> None:
    """Django's `listen_for_disconnect`, returning at the disconnect instead of raising `RequestAborted` (an
    exception, its traceback and a reference cycle per request: the listener ends this way on every request served
    by uvicorn, which answers `receive()` with a disconnect once the response is complete)."""
    message = await receive()
    if message["type"] != "http.disconnect":
        raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")  # Django's words


class _DisconnectWatch:
    """Cancels the serving task when the disconnect listener ends while the request is being served."""

    __slots__ = ("cancelled", "serving", "task")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.serving = True
        self.cancelled = False

    def listener_done(self, listener: asyncio.Task[None]) -> None:
        if self.serving and not listener.cancelled() and self.task is not None:
            self.cancelled = True
            self.task.cancel()

    def ended(self) -> bool:
        """Serving is over; True if the listener cancelled it (that cancellation is then taken back: it has been
        handled, and the task is not being cancelled by anyone else)."""
        self.serving = False
        if self.cancelled and self.task is not None:
            self.task.uncancel()
        return self.cancelled


def _listener_failed(listener: asyncio.Task[None], body_file: IO[bytes]) -> bool:
    """The listener got another message than a disconnect: Django closes the body and raises its AssertionError."""
    if listener.done() and not listener.cancelled() and isinstance(listener.exception(), AssertionError):
        body_file.close()
        return True
    return False


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
