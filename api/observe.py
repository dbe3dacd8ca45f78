"""What a served request was, for whoever watches it: the access log, Prometheus, the server span's name.

`api.middleware.ObservabilityMiddleware` measures each request once and hands a `RequestRecord` to every observer
that `settings.REQUEST_OBSERVERS` names (dotted paths of `RequestObserver` subclasses, built once with no argument):
`api.logging.AccessLog`, `config.metrics.RequestMetrics`, `config.tracing.ServerSpanNames`. Kept free of Django's
request machinery so logging set-up can import it before the apps are ready.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from upstreams import CallRecord

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

__all__ = ["RequestObserver", "RequestRecord"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One served request, as the observers see it."""

    method: str
    route: str  # the URL pattern that matched ("/api/products/{id}/"), never the raw path; "unmatched" for none
    status: int  # 499 when the client went away first (no response)
    seconds: float
    client: str  # the API key's client name, or "anonymous"
    request_id: str
    calls: Sequence[CallRecord]  # the upstream calls made while serving it, in the order they ended


class RequestObserver:
    """What `settings.REQUEST_OBSERVERS` lists (dotted paths of subclasses, built once with no argument). Both
    hooks run on the event loop, inline: they must not block, and must not raise."""

    def started(self, request: HttpRequest) -> None: ...

    def finished(self, request: HttpRequest, response: HttpResponseBase | None, record: RequestRecord) -> None:
        """The request is over; `response` is None when it was cancelled (`record.status` is then 499)."""
