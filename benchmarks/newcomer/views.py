"""The view a newcomer writes from the adrf README: `async def get`, a module-level shared client, DRF serializers.

A newcomer does not know that httpx's own connection pool is slow under concurrency, so the client keeps httpx's
default transport and limits.
"""

import asyncio
from typing import Any

import httpx
from adrf.views import APIView
from django.conf import settings
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

client = httpx.AsyncClient()


class SlowItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    value = serializers.CharField(allow_blank=True)


class SlowDataSerializer(serializers.Serializer):
    source = serializers.CharField()
    message = serializers.CharField(allow_blank=True)
    latency_ms = serializers.FloatField(min_value=0)
    items = SlowItemSerializer(many=True)


async def fetch(path: str) -> Any:
    response = await client.get(f"{settings.UPSTREAM_URL}/{path}")
    response.raise_for_status()
    serializer = SlowDataSerializer(data=response.json())
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class OneExternalData(APIView):
    async def get(self, request: Request) -> Response:
        return Response(await fetch("slow_data"))


class MultipleExternalData(APIView):
    async def get(self, request: Request) -> Response:
        results = await asyncio.gather(fetch("slow_data_1"), fetch("slow_data_2"), fetch("slow_data_3"))
        return Response({"results": results})


class TenExternalData(APIView):
    async def get(self, request: Request) -> Response:
        results = await asyncio.gather(*(fetch(f"slow_data_{n}") for n in range(1, 11)))
        return Response({"results": results})
