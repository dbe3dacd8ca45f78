"""URLconf for `make bench-collections`: every route of `config.urls`, plus the same composed collection read with
its database part replaced by a constant (`/bench/collection-without-database/<id>/`), to set the two side by side.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpResponse
from django.urls import path
from rest_framework.request import Request

from api.aggregation import Inputs, Read
from api.collections import serializers as s
from api.collections.composition import ComposedCollection
from api.collections.views import CollectionViewSet
from config import urls as project_urls

PRODUCTS = 20
_CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def _without_database(inputs: Inputs) -> dict[str, Any]:
    """What `read_collection` returns for the benchmark's collection (products 1 to 20), without a query."""
    items = [{"product_id": product_id, "note": ""} for product_id in range(1, PRODUCTS + 1)]
    return {"id": inputs.args["id"], "name": "bench", "created": _CREATED, "updated": _CREATED, "items": items}


class WithoutDatabase(ComposedCollection):
    """The composed collection with a constant in place of the database read: the same fan-out otherwise."""

    collection = Read(run=_without_database)


class WithoutDatabaseViewSet(CollectionViewSet):
    async def retrieve(self, request: Request, pk: str) -> HttpResponse:
        data, parts = await self.aggregate(WithoutDatabase(), {"id": int(pk), "client_id": None})
        return self.respond(data, parts, s.CollectionDetail)


urlpatterns = [
    path(
        "bench/collection-without-database/<str:pk>/",
        WithoutDatabaseViewSet.as_view({"get": "retrieve"}),
        name="bench-collection-without-database",
    ),
    *project_urls.urlpatterns,
]

handler400 = project_urls.handler400
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500
