"""`APIView` for the vendored adrf tests: our `OnLoopAPIView`, with `response.data` put back after dispatch.

`OnLoopAPIView` returns an already rendered plain `HttpResponse`, and our exception handler answers problem
documents, so adrf's tests would find no `response.data`. After the view under test has run, this puts back what
they read: the DRF `Response`'s data, or, for an error, the raised exception's `detail` (the body DRF's default
exception handler would have built, with its `ErrorDetail` codes). Nothing here changes what the view does.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseBase
from rest_framework.exceptions import APIException
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from api.onloop import OnLoopAPIView


class APIView(OnLoopAPIView):
    # adrf's test project runs on DRF's default classes, whose authenticators never answer a 401 challenge; ours
    # (API keys, api/clients/) would turn their 403s into 401s. Tests that check authentication set their own.
    authentication_classes = ()
    permission_classes = (AllowAny,)

    async def async_dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        self._data: Any = None
        response = await super().async_dispatch(request, *args, **kwargs)
        response.data = self._data  # type: ignore[attr-defined]
        return response

    def handle_exception(self, exc: Exception) -> Any:
        if isinstance(exc, APIException):
            self._data = {"detail": exc.detail}
        return super().handle_exception(exc)

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(response, Response):
            self._data = response.data
        return super().finalize_response(request, response, *args, **kwargs)
