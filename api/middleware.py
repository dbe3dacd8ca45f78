"""Async-native middleware. Django wraps a sync-only middleware in a thread hop per request; these need none."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import markcoroutinefunction
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware

from upstreams import REQUEST_ID_HEADER, request_id

from .problems import problem_response

__all__ = ["RequestContextMiddleware", "StaticFilesMiddleware"]

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]

# A client-supplied id is kept only if it is short and plain: it ends up in logs and upstream headers.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """The request's context, before anything else runs.

    - Takes the client's `X-Request-ID` (or makes one), exposes it to logs and upstream calls, and returns it.
    - Checks the Host header against ALLOWED_HOSTS up front: Django checks it lazily, at the first
      `get_host()`, which would otherwise surface as an error in the middle of a view.
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        supplied = request.headers.get(REQUEST_ID_HEADER, "")
        rid = supplied if _VALID_REQUEST_ID.match(supplied) else uuid.uuid4().hex
        token = request_id.set(rid)
        try:
            try:
                request.get_host()
            except DisallowedHost:
                response: HttpResponseBase = problem_response(400, "bad_request", "The Host header is not allowed.")
            else:
                response = await self.get_response(request)
        finally:
            request_id.reset(token)
        response[REQUEST_ID_HEADER] = rid
        return response


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, async: a static hit is a dictionary look-up; everything else passes straight through."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        static_file = self.files.get(request.path_info)
        if static_file is not None:
            return self.serve(static_file, request)
        return await self.get_response(request)
