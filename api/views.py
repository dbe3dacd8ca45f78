"""The API's adrf viewsets: each action validates its query, builds one aggregate, and shapes it with a serializer.

The aggregates' viewsets are made from their declarations (api/aggregates.py, `aggregate_viewsets()`). They contain
no concurrency and no error mapping: aggregates run the upstream calls, and api/problems.py turns every failure into
a problem document. The schema and its documentation pages are api/docs.py's (loaded on first use).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from adrf.viewsets import ViewSet
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from upstreams import get_registry

from . import fastpath
from . import serializers as s
from .aggregation import Aggregate, Parts, Route, published
from .onloop import OnLoopAPIView
from .renderers import ORJSONRenderer
from .schema import AGGREGATE_HEADERS, NOT_MODIFIED, REQUEST_ID, AutoSchema, problems

__all__ = [
    "AggregateViewSet",
    "HealthView",
    "ReadinessView",
    "UpstreamViewSet",
    "aggregate_viewsets",
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
        try:
            serializer.is_valid(raise_exception=True)
            return serializer.validated_data
        finally:
            _unbind(serializer)

    def requested_deadline(self) -> float | None:
        """The client's own deadline from the `Request-Timeout` header (seconds); it can only shorten ours.

        A plain decimal number (`2`, `0.5`, `1e1`), as the schema's `type: number` reads: not Python's `float()`
        syntax, which also takes `1_0`, `inf` or non-ASCII digits.
        """
        raw = self.request._request.META.get(_REQUEST_TIMEOUT_META)  # request.headers reads it from there
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

    def respond(self, data: Any, parts: Parts, serializer_class: type[serializers.Serializer]) -> HttpResponse:
        """The shaped body as JSON, with one Server-Timing entry per upstream call (the browser's waterfall), its
        freshness (`Cache-Control`, the strictest of its parts') and a strong `ETag` over the body; a request whose
        `If-None-Match` names that tag gets 304 with the same headers and no body.

        Rendered here, straight into Django's response: content negotiation already chose JSON (it is the only
        renderer), and a DRF `Response` would only be rendered and copied into one later.
        """
        body = _JSON.render(fastpath.represent(serializer_class, data))
        headers = {
            "Server-Timing": parts.server_timing(),
            "Cache-Control": parts.cache_control(private=self.request.auth is not None),
            "ETag": entity_tag(body),
        }
        if if_none_match(self.request._request.META.get("HTTP_IF_NONE_MATCH"), headers["ETag"]):
            response = HttpResponse(status=304, headers=headers)
            del response["Content-Type"]  # a 304 has no content to have a type
            return response
        return HttpResponse(body, content_type=_JSON.media_type, headers=headers)


def _unbind(field: Any) -> None:
    """Free a serializer that is done with at once: DRF binds each field to its serializer (`field.parent`, and the
    serializer's `fields`), a reference cycle per instance that only the cyclic garbage collector would free."""
    for child in field.__dict__.pop("fields", {}).values():  # the cached `fields` (a BindingDict, bound to it)
        _unbind(child)
    child = field.__dict__.get("child")
    if child is not None:
        _unbind(child)
    field.parent = None


def entity_tag(body: bytes) -> str:
    """A strong entity tag for these exact bytes (RFC 9110 8.8.3): 128 bits of BLAKE2b."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def if_none_match(header: str | None, etag: str) -> bool:
    """Does `If-None-Match` name `etag` (or `*`)? The weak comparison RFC 9110 13.1.2 asks for: `W/"x"` matches
    `"x"`. Anything unparsable in the list is ignored."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


REQUEST_TIMEOUT_HEADER = "Request-Timeout"
_REQUEST_TIMEOUT_META = "HTTP_REQUEST_TIMEOUT"
_DECIMAL_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", flags=re.ASCII)


class DeclaredSchema(AutoSchema):
    """An aggregate's operation is described by its declaration only: with no description in its docstring it has
    none, rather than drf-spectacular's fallback to the viewset's (internal) docstring."""

    def get_description(self) -> str:  # type: ignore[override]  # the stubs say str | None; the library returns str
        return ""


class AggregateViewSet(TributaryViewSet):
    """Serves published aggregates: `aggregate_viewsets()` makes one subclass per route prefix, with one action per
    aggregate (`list`, `retrieve`, or an extra detail action), each documented from its aggregate's declaration."""

    schema = DeclaredSchema()

    async def serve(self, aggregate_class: type[Aggregate], route: Route, path_args: Mapping[str, str]) -> HttpResponse:
        args = {name: route.python_type(value) for name, value in path_args.items()}
        if aggregate_class.query is not None:
            args.update(self.query(aggregate_class.query))
        aggregate = aggregate_class()
        data, parts = await self.aggregate(aggregate, args)
        data = aggregate.complete(data, parts, self.request)
        return self.respond(data, parts, aggregate_class.response)


def aggregate_viewsets() -> list[tuple[str, type[AggregateViewSet]]]:
    """(route prefix, viewset) for every published aggregate, grouped by prefix, for DRF's router to register."""
    groups: dict[str, list[type[Aggregate]]] = {}
    for aggregate_class in published():
        groups.setdefault(aggregate_class.parsed_route().prefix, []).append(aggregate_class)
    viewsets = []
    for prefix, members in groups.items():
        attrs: dict[str, Any] = {"__module__": __name__, "__doc__": f"The published aggregates under `{prefix}`."}
        lookup: tuple[str, str] | None = None
        for aggregate_class in members:
            route = aggregate_class.parsed_route()
            if route.param is not None:
                if lookup not in (None, (route.param, route.regex)):
                    raise TypeError(f"the aggregates under {prefix!r} must agree on their path parameter")
                lookup = (route.param, route.regex)
                attrs["lookup_field"], attrs["lookup_value_regex"] = lookup
            name = "list" if route.param is None else "retrieve" if route.action is None else route.action
            name = name.replace("-", "_")
            attrs[name] = _action(name, aggregate_class, route)
        name = "".join(part.title() for part in re.split(r"[-/]", prefix)) + "ViewSet"
        viewsets.append((prefix, type(name, (AggregateViewSet,), attrs)))
    return viewsets


def _action(name: str, aggregate_class: type[Aggregate], route: Route) -> Any:
    async def handler(self: AggregateViewSet, request: Request, **path_args: str) -> HttpResponse:
        return await self.serve(aggregate_class, route, path_args)

    handler.__name__ = handler.__qualname__ = name  # DRF's router checks it against the attribute
    handler.__doc__ = None  # the schema's description is the aggregate's, not this function's
    parameters: list[Any] = []
    if route.param is not None:
        kind = OpenApiTypes.INT if route.python_type is int else OpenApiTypes.STR
        parameters.append(OpenApiParameter(route.param, kind, OpenApiParameter.PATH))
    if aggregate_class.query is not None:
        parameters.append(aggregate_class.query)
    example = aggregate_class.demo_example()
    examples = [] if example is None else [OpenApiExample("From the demo upstreams", example, response_only=True)]
    routed: Any = handler
    if route.action is not None:
        routed = action(detail=True, methods=["get"], url_path=route.action, url_name=route.action)(handler)
    handler.operation_id = aggregate_class.operation_id  # type: ignore[attr-defined]  # for clients' scopes
    return extend_schema(
        operation_id=aggregate_class.operation_id,
        summary=aggregate_class.summary(),
        description=aggregate_class.description(),
        parameters=[*parameters, *AGGREGATE_HEADERS],
        responses={200: aggregate_class.response, 304: NOT_MODIFIED, **problems(*aggregate_class.error_statuses())},
        tags=[aggregate_class.tag],
        examples=examples,
    )(routed)


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

    list.operation_id = "list_upstreams"  # type: ignore[attr-defined]  # for clients' scopes


class HealthView(AnswersOptions, OnLoopAPIView):
    throttle_classes = ()  # the probes are not rate limited
    # Probes need no key: load balancers and orchestrators call them.
    authentication_classes = ()
    permission_classes = ()

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
    throttle_classes = ()
    authentication_classes = ()
    permission_classes = ()

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
