"""Benchmark-only views served inside Tributary's process (benchmarks/bench_settings.py routes them).

- `TenCalls`: `MultipleExternalData`, ten wide (`slow_data_1` ... `slow_data_10`), on the project's own engine.
- `seed_multiple`: the seed's pattern, a plain Django view with a new `httpx.AsyncClient` per upstream call.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import httpx
from django.http import HttpRequest, JsonResponse
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from api import serializers as s
from api.aggregation import Aggregate, Fetch, Parts
from api.views import TributaryViewSet
from upstreams import get_registry

__all__ = ["TenCalls", "TenCallsViewSet", "seed_multiple"]


class TenCalls(Aggregate):
    """Ten independent upstream payloads fetched concurrently."""

    call_1 = Fetch(upstream="slow", path="slow_data_1", serializer=s.SlowData)
    call_2 = Fetch(upstream="slow", path="slow_data_2", serializer=s.SlowData)
    call_3 = Fetch(upstream="slow", path="slow_data_3", serializer=s.SlowData)
    call_4 = Fetch(upstream="slow", path="slow_data_4", serializer=s.SlowData)
    call_5 = Fetch(upstream="slow", path="slow_data_5", serializer=s.SlowData)
    call_6 = Fetch(upstream="slow", path="slow_data_6", serializer=s.SlowData)
    call_7 = Fetch(upstream="slow", path="slow_data_7", serializer=s.SlowData)
    call_8 = Fetch(upstream="slow", path="slow_data_8", serializer=s.SlowData)
    call_9 = Fetch(upstream="slow", path="slow_data_9", serializer=s.SlowData)
    call_10 = Fetch(upstream="slow", path="slow_data_10", serializer=s.SlowData)

    def shape(self, parts: Parts) -> Any:
        return {"results": [parts.get(name) for name in self.fetches]}


class Results(serializers.Serializer):
    results = s.SlowData(many=True)


class BenchViewSet(TributaryViewSet):
    """`GET` builds `aggregate_class` and shapes it with `response_serializer`, like the API's own viewsets."""

    aggregate_class: ClassVar[type[Aggregate]]
    response_serializer: ClassVar[type[serializers.Serializer[Any]]]

    async def list(self, request: Request) -> Response:
        data, parts = await self.aggregate(self.aggregate_class(), {})
        return self.respond(data, parts, self.response_serializer)


class TenCallsViewSet(BenchViewSet):
    aggregate_class = TenCalls
    response_serializer = Results


async def seed_multiple(request: HttpRequest) -> JsonResponse:
    """The seed's pattern: a new client per call, `asyncio.gather`, DRF validation, `JsonResponse`."""
    base_url = get_registry().configs["slow"].base_url

    async def fetch(path: str) -> Any:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{base_url}/{path}")
        response.raise_for_status()
        serializer = s.SlowData(data=response.json())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    results = await asyncio.gather(fetch("slow_data_1"), fetch("slow_data_2"), fetch("slow_data_3"))
    return JsonResponse({"results": results})
