"""`OnLoopAPIView`: adrf's `APIView` with its dispatch kept on the event loop (no thread hop per request).

Replaces adrf 0.1.14's `APIView.async_dispatch` (and, for rendering, Django's threaded rendering of a DRF `Response`).
What it replaces must still behave as adrf/DRF do; the tests that pin that live in tests/api/test_onloop.py.
"""

from __future__ import annotations

from inspect import iscoroutinefunction
from typing import Any

from adrf.views import APIView
from django.http import HttpResponse, HttpResponseBase
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView as DRFAPIView

__all__ = ["OnLoopAPIView"]


class OnLoopAPIView(APIView):
    """adrf's dispatch, minus its thread hops.

    adrf runs `initial()` (content negotiation, authentication, permission and throttle checks) through
    `sync_to_async`, and Django renders a DRF `Response` in another thread. Ours are pure CPU (no session, no
    database), so both run here on the event loop, and the view returns an already rendered plain `HttpResponse`.
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
            self.initial(request, *args, **kwargs)
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
        response = self.finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response):
            response = _rendered(response)
        self.response = response
        return response

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        # The common case, decided without parsing the Accept header: JSON is the only renderer, and the client
        # accepts anything or JSON and asks for no ?format=. Anything else goes through DRF's negotiation (and
        # its 406).
        accept = request.META.get("HTTP_ACCEPT")
        if (
            accept in _ACCEPTS_JSON
            and len(self.renderer_classes) == 1
            and self.format_kwarg is None
            and api_settings.URL_FORMAT_OVERRIDE not in request._request.GET
        ):
            renderer = self.renderer_classes[0]()
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)

    # adrf's versions call async_to_sync for async checks, which cannot run inside the event loop; ours are sync.
    def check_permissions(self, request: Request) -> None:
        DRFAPIView.check_permissions(self, request)

    def check_throttles(self, request: Request) -> None:
        DRFAPIView.check_throttles(self, request)


_ACCEPTS_JSON = frozenset({None, "", "*/*", "application/json"})


def _rendered(response: Response) -> HttpResponseBase:
    response.render()
    plain = HttpResponse(response.content, status=response.status_code)
    for header, value in response.items():
        plain[header] = value
    return plain
