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

`handle()` below is Django 5.2's, with exactly those calls made inline (marked `# inline`). Django is pinned to
5.2.x in pyproject.toml; `tests/test_thread_hops.py` fails if a hop comes back.

The database's per-request receivers are disconnected as well: no request here opens a connection (the API keeps
no data; Django forbids database access from the event loop), so they would only walk empty connection lists on
every request. Code that adds database access in views must reconnect them (django.db.close_old_connections and
reset_queries on request_started/request_finished).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import close_old_connections, reset_queries
from django.http import HttpRequest, HttpResponseBase
from django.urls import set_script_prefix, set_urlconf
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
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)  # inline
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # create_request returns one or the other
            body_file.close()
            await self.send_response(error_response, send)
            error_response.close()  # inline
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
            signals.request_finished.send(sender=self.__class__)  # inline
        else:
            response.close()  # inline
        body_file.close()

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
