"""The API's adrf viewsets: each validates its query, builds one aggregate, and shapes it with a serializer.

They contain no concurrency and no error mapping: aggregates (api/aggregates.py) run the upstream calls, and
api/problems.py turns every failure into a problem document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from adrf.viewsets import ViewSet
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from upstreams import get_registry

from . import aggregates, fastpath
from . import serializers as s
from .aggregation import Aggregate, Parts
from .onloop import OnLoopAPIView
from .renderers import ORJSONRenderer
from .schema import AGGREGATE_HEADERS, REQUEST_ID, problems

__all__ = [
    "ExternalDataViewSet",
    "HealthView",
    "MultipleExternalDataViewSet",
    "ProductViewSet",
    "ReadinessView",
    "RedocView",
    "SchemaView",
    "SwaggerView",
    "UpstreamViewSet",
]


_JSON = ORJSONRenderer()


class AnswersOptions:
    """`OPTIONS` answers 204 with the `Allow` header (DRF adds it to every response), and no body.

    DRF's own `options()` describes the view in a body no schema documents, rendered by the view's renderer: for the
    docs pages that is a template renderer without a template, which made `OPTIONS /api/docs/` a 500.
    """

    def options(self, request: Any, *args: Any, **kwargs: Any) -> Any:  # Any: the stubs say DRF's returns a Response
        response = HttpResponse(status=204)
        del response["Content-Type"]  # there is no content to have a type
        return response


class TributaryViewSet(AnswersOptions, OnLoopAPIView, ViewSet):
    def query(self, serializer_class: type[serializers.Serializer]) -> Mapping[str, Any]:
        """The validated query string; invalid -> 400 problem with field errors."""
        # A plain dict, not the QueryDict: DRF takes an empty value in a QueryDict for an absent one (`?currency=`
        # would mean "no currency"), where the schema says an empty string is not a currency. The last value of a
        # repeated parameter counts, as with the QueryDict.
        query = {name: self.request.query_params[name] for name in self.request.query_params}
        serializer = serializer_class(data=query)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def requested_deadline(self) -> float | None:
        """The client's own deadline from the `Request-Timeout` header (seconds); it can only shorten ours.

        A plain decimal number (`2`, `0.5`, `1e1`), as the schema's `type: number` reads: not Python's `float()`
        syntax, which also takes `1_0`, `inf` or non-ASCII digits.
        """
        raw = self.request.headers.get(REQUEST_TIMEOUT_HEADER)
        if raw is None:
            return None
        seconds = float(raw) if _DECIMAL_NUMBER.fullmatch(raw) else -1.0
        if not 0 < seconds <= 3600:
            raise exceptions.ValidationError(
                {REQUEST_TIMEOUT_HEADER: ["Must be a number of seconds greater than 0 and at most 3600."]},
                code="invalid",
            )
        return seconds

    async def aggregate(self, aggregate: Aggregate, args: Mapping[str, Any]) -> tuple[Any, Parts]:
        return await aggregate.build(args, deadline=self.requested_deadline())

    @staticmethod
    def respond(data: Any, parts: Parts, serializer_class: type[serializers.Serializer]) -> HttpResponse:
        """The shaped body as JSON, with one Server-Timing entry per upstream call (the browser's waterfall).

        Rendered here, straight into Django's response: content negotiation already chose JSON (it is the only
        renderer), and a DRF `Response` would only be rendered and copied into one later.
        """
        return HttpResponse(
            _JSON.render(fastpath.represent(serializer_class, data)),
            content_type=_JSON.media_type,
            headers={"Server-Timing": parts.server_timing()},
        )


REQUEST_TIMEOUT_HEADER = "Request-Timeout"
_DECIMAL_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", flags=re.ASCII)


class ExternalDataViewSet(TributaryViewSet):
    @extend_schema(
        operation_id="get_external_data",
        summary="One upstream payload",
        description="Fetches `slow_data` from the `slow` upstream, validates it and returns it.",
        parameters=AGGREGATE_HEADERS,
        responses={200: s.ExternalData, **problems(400, 500, 502, 503, 504)},
        tags=["examples"],
    )
    async def list(self, request: Request) -> HttpResponse:
        data, parts = await self.aggregate(aggregates.ExternalData(), {})
        return self.respond(data, parts, s.ExternalData)


class MultipleExternalDataViewSet(TributaryViewSet):
    @extend_schema(
        operation_id="get_multiple_external_data",
        summary="Three upstream payloads, fetched concurrently",
        description="Takes about as long as the slowest of the three calls, not their sum.",
        parameters=AGGREGATE_HEADERS,
        responses={200: s.MultipleExternalData, **problems(400, 500, 502, 503, 504)},
        tags=["examples"],
    )
    async def list(self, request: Request) -> HttpResponse:
        data, parts = await self.aggregate(aggregates.MultipleExternalData(), {})
        return self.respond(data, parts, s.MultipleExternalData)


class ProductViewSet(TributaryViewSet):
    lookup_field = "id"
    lookup_value_regex = r"[0-9]{1,18}"

    @extend_schema(
        operation_id="list_products",
        summary="A page of products",
        description="The catalog, one page at a time, with links to the next and previous pages.",
        parameters=[s.ProductListQuery, *AGGREGATE_HEADERS],
        responses={200: s.ProductPage, **problems(400, 500, 502, 503, 504)},
        tags=["products"],
    )
    async def list(self, request: Request) -> HttpResponse:
        query = self.query(s.ProductListQuery)
        data, parts = await self.aggregate(aggregates.ProductList(), query)
        data["next"], data["previous"] = self._links(request, count=data["count"], **query)
        return self.respond(data, parts, s.ProductPage)

    @extend_schema(
        operation_id="get_product_overview",
        summary="A product overview composed from four upstreams",
        description=(
            "catalog is required: its failure fails the request, and an unknown id is a 404. inventory, reviews "
            "and fx (with `?currency=`) are optional: when one fails the response is still 200, that part is null, "
            "and `missing` says which part failed and why."
        ),
        parameters=[
            OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH),
            s.ProductOverviewQuery,
            *AGGREGATE_HEADERS,
        ],
        responses={200: s.ProductOverview, **problems(400, 404, 500, 502, 503, 504)},
        tags=["products"],
    )
    async def retrieve(self, request: Request, id: str) -> HttpResponse:
        query = self.query(s.ProductOverviewQuery)
        data, parts = await self.aggregate(aggregates.ProductOverview(), {"id": int(id), **query})
        return self.respond(data, parts, s.ProductOverview)

    @staticmethod
    def _links(request: Request, *, count: int, page: int, page_size: int) -> tuple[str | None, str | None]:
        url = request.build_absolute_uri()
        has_next = page * page_size < count
        next_url = replace_query_param(url, "page", page + 1) if has_next else None
        if page <= 1:
            previous_url = None
        elif page == 2:
            previous_url = remove_query_param(url, "page")
        else:
            # Past the end, point back at the last page that has products.
            last = max(1, -(-count // page_size))
            previous_url = replace_query_param(url, "page", min(page - 1, last))
        return next_url, previous_url


class UpstreamViewSet(TributaryViewSet):
    @extend_schema(
        operation_id="list_upstreams",
        summary="The configured upstreams",
        description="Names, hosts, limits, policies and circuit state of the upstream services. Never credentials "
        "or headers.",
        parameters=[REQUEST_ID],
        responses={200: s.UpstreamList, **problems(500)},
        tags=["operations"],
    )
    async def list(self, request: Request) -> Response:
        registry = get_registry()
        circuits = await registry.circuits()
        results = [
            {
                "name": c.name,
                "host": c.host,
                "timeout": c.timeout,
                "connect_timeout": c.connect_timeout,
                "max_connections": c.max_connections,
                "max_body_bytes": c.max_body_bytes,
                "retries": c.retry.retries,
                "retry_backoff": c.retry.backoff,
                "retry_backoff_max": c.retry.backoff_max,
                "retry_after_max": c.retry.retry_after_max,
                "breaker_failures": c.breaker.failures,
                "breaker_failure_ratio": c.breaker.failure_ratio,
                "breaker_min_calls": c.breaker.min_calls,
                "breaker_window": c.breaker.window,
                "breaker_cooldown": c.breaker.cooldown,
                "max_concurrency": c.bulkhead.max_concurrency,
                "queue_timeout": c.bulkhead.queue_timeout,
                "coalesce": c.coalesce,
                "cache_ttl": c.cache.ttl,
                "stale_if_error": c.cache.stale_if_error,
                "circuit": circuits[c.name].as_dict(),
            }
            for c in registry.configs.values()
        ]
        return Response(s.UpstreamList({"deadline": settings.AGGREGATE_DEADLINE, "results": results}).data)


class HealthView(AnswersOptions, OnLoopAPIView):
    @extend_schema(
        operation_id="get_health",
        summary="Liveness",
        description="200 while the process serves requests. Does not call upstreams.",
        parameters=[REQUEST_ID],
        responses={200: s.Health, **problems()},
        tags=["operations"],
    )
    async def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ReadinessView(AnswersOptions, OnLoopAPIView):
    @extend_schema(
        operation_id="get_readiness",
        summary="Readiness",
        description=(
            "The circuit breakers' view of the upstreams. 200 while at least one upstream can be called (a single "
            "failing upstream degrades some responses but should not take every instance out of a load "
            "balancer); 503 when every circuit is open."
        ),
        parameters=[REQUEST_ID],
        responses={200: s.Readiness, 503: s.Readiness, **problems()},
        tags=["operations"],
    )
    async def get(self, request: Request) -> Response:
        circuits = {name: status.state.value for name, status in (await get_registry().circuits()).items()}
        open_count = sum(state == "open" for state in circuits.values())
        status = "degraded" if open_count else "ready"
        if circuits and open_count == len(circuits):
            status = "unavailable"
        return Response({"status": status, "circuits": circuits}, status=503 if status == "unavailable" else 200)


# --- The schema and its documentation pages ------------------------------------------------------------------------


class SchemaView(AnswersOptions, SpectacularAPIView):
    """The OpenAPI schema (`?format=json` for JSON)."""


class SwaggerView(AnswersOptions, SpectacularSwaggerView):
    """Swagger UI, from the sidecar's local assets."""


class RedocView(AnswersOptions, SpectacularRedocView):
    """ReDoc, from the sidecar's local assets and with nothing fetched from elsewhere.

    drf-spectacular's template links Google Fonts, and ReDoc's bundle shows a logo from its CDN: ours links no
    fonts (ReDoc falls back to the system's) and keeps that logo from being requested (api/templates/api/redoc.html).
    """

    template_name = "api/redoc.html"
