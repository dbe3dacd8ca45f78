"""The collections' adrf viewset: list, create, retrieve (composed), update, partial update and delete.

A client sees and changes only its own collections (`request.auth`, an `api.clients.identity.Caller`); an anonymous
caller, where keys are optional, has none: its list is empty, any id is a 404, and a write is 401. A write checks
every product id against the catalog, concurrently, before anything is written: unknown ids are a 400 naming each
(`items[2].product_id`, `unknown_product`), and a catalog that cannot answer fails the write (503 when unreachable)
with nothing written. Database access goes through api/database.py: each action's queries in one `arun()` hop (writes
in one transaction), the composed read natively async on PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, transaction
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from api import database
from api.clients.identity import Caller
from api.schema import AGGREGATE_HEADERS, COMMON_HEADERS, NOT_MODIFIED, problems
from api.views import TributaryViewSet
from upstreams import Call, UpstreamNotFound, UpstreamUnavailable, fan_out, get_registry

from . import serializers as s
from .composition import ComposedCollection
from .models import Collection, CollectionItem

__all__ = ["CollectionViewSet", "check_products"]

logger = logging.getLogger("tributary.collections")
T = TypeVar("T")

ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The collection's id.")
TAGS = ["collections"]
WRITE_ERRORS = problems(400, 404, 413, 500, 502, 503, 504)


async def check_products(product_ids: list[int], *, deadline: float) -> None:
    """Every id exists in the catalog (one GET each, all at once), else a 400 naming the unknown ones; a catalog
    that cannot answer raises its error (503 unreachable or circuit open, 504 too slow, 502 otherwise)."""
    client = get_registry().client("catalog")

    def call(product_id: int) -> Call:
        async def run(_: Mapping[str, Any]) -> None:
            await client.fetch_json(f"products/{product_id}")

        return Call(name=str(product_id), upstream="catalog", run=run, required=False)

    outcome = await fan_out([call(product_id) for product_id in product_ids], deadline=deadline)
    failures = outcome.failures
    other = next((error for error in failures.values() if not isinstance(error, UpstreamNotFound)), None)
    if other is not None:
        raise other
    if failures:
        raise exceptions.ValidationError(
            {
                "items": [
                    {"product_id": [exceptions.ErrorDetail(f"There is no product {pid}.", code="unknown_product")]}
                    if str(pid) in failures
                    else {}
                    for pid in product_ids
                ]
            }
        )


async def _db(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`fn`'s queries in one hop (api/database.py); a database failure is a 503 (`upstream: database`), never a 500."""
    try:
        return await database.arun(fn, *args, **kwargs)
    except DatabaseError:
        logger.exception("database: the query failed")
        raise UpstreamUnavailable("database", "The database is unavailable.") from None


class CollectionViewSet(TributaryViewSet):
    """The caller's product collections."""

    lookup_value_regex = "[0-9]{1,18}"

    def caller(self) -> Caller | None:
        auth = self.request.auth
        return auth if isinstance(auth, Caller) else None

    def writer(self) -> Caller:
        caller = self.caller()
        if caller is None:
            raise exceptions.NotAuthenticated("An API key is required to keep collections.")
        return caller

    def body(self, *, partial: bool) -> dict[str, Any]:
        serializer = s.CollectionWrite(data=self.request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    async def checked(self, data: Mapping[str, Any]) -> None:
        if "items" in data:
            deadline = min(self.requested_deadline() or settings.AGGREGATE_DEADLINE, settings.AGGREGATE_DEADLINE)
            await check_products([item["product_id"] for item in data["items"]], deadline=deadline)

    @extend_schema(
        operation_id="list_collections",
        summary="The caller's collections",
        description="Paginated, oldest first; an anonymous caller has none.",
        parameters=[s.CollectionListQuery, *COMMON_HEADERS],
        responses={200: s.CollectionPage, **problems(400, 500)},
        tags=TAGS,
    )
    async def list(self, request: Request) -> Response:
        query = self.query(s.CollectionListQuery)
        page, page_size = query["page"], query["page_size"]
        caller = self.caller()
        count, collections = 0, list[dict[str, Any]]()
        if caller is not None:
            count, collections = await _db(_page, caller.client_id, page=page, page_size=page_size)
        url = request.build_absolute_uri()
        last = max(1, -(-count // page_size))
        previous = None
        if page == 2:
            previous = remove_query_param(url, "page")
        elif page > 2:
            previous = replace_query_param(url, "page", min(page - 1, last))
        data = {
            "count": count,
            "next": replace_query_param(url, "page", page + 1) if page * page_size < count else None,
            "previous": previous,
            "results": collections,
        }
        return Response(s.CollectionPage(data).data)

    @extend_schema(
        operation_id="create_collection",
        summary="Create a collection",
        description="Every product id is checked against the catalog first; nothing is written unless all exist.",
        request=s.CollectionWrite,
        parameters=[*COMMON_HEADERS],
        responses={201: s.CollectionSummary, **WRITE_ERRORS},
        tags=TAGS,
    )
    async def create(self, request: Request) -> Response:
        caller = self.writer()
        data = self.body(partial=False)
        await self.checked(data)
        collection = await _db(_create, caller.client_id, data)
        return Response(s.CollectionSummary(collection).data, status=201)

    @extend_schema(
        operation_id="get_collection",
        summary="A collection, composed",
        description="The collection (our database) with each product's catalog data, stock and rating, read in one "
        "fan-out under the request's deadline (`Server-Timing` shows the database read beside the upstream calls). "
        "A product an upstream did not answer for has that field null and an entry in `missing` with its path.",
        parameters=[ID, *AGGREGATE_HEADERS],
        responses={200: s.CollectionDetail, 304: NOT_MODIFIED, **problems(400, 404, 500, 502, 503, 504)},
        tags=TAGS,
    )
    async def retrieve(self, request: Request, pk: str) -> HttpResponse:
        caller = self.caller()
        args = {"id": int(pk), "client_id": caller.client_id if caller else None}
        data, parts = await self.aggregate(ComposedCollection(), args)
        return self.respond(data, parts, s.CollectionDetail)

    @extend_schema(
        operation_id="update_collection",
        summary="Replace a collection",
        description="Its name and all its products; every product id is checked against the catalog first.",
        request=s.CollectionWrite,
        parameters=[ID, *COMMON_HEADERS],
        responses={200: s.CollectionSummary, **WRITE_ERRORS},
        tags=TAGS,
    )
    async def update(self, request: Request, pk: str) -> Response:
        return await self._update(int(pk), partial=False)

    @extend_schema(
        operation_id="partial_update_collection",
        summary="Change a collection's name or products",
        description="`items`, when given, replaces the whole list (checked against the catalog first).",
        request=s.CollectionWrite,
        parameters=[ID, *COMMON_HEADERS],
        responses={200: s.CollectionSummary, **WRITE_ERRORS},
        tags=TAGS,
    )
    async def partial_update(self, request: Request, pk: str) -> Response:
        return await self._update(int(pk), partial=True)

    @extend_schema(
        operation_id="delete_collection",
        summary="Delete a collection",
        parameters=[ID, *COMMON_HEADERS],
        responses={204: OpenApiResponse(description="Deleted."), **problems(404, 500)},
        tags=TAGS,
    )
    async def destroy(self, request: Request, pk: str) -> HttpResponse:
        caller = self.writer()
        deleted, _ = await _db(Collection.objects.filter(pk=int(pk), client_id=caller.client_id).delete)
        if not deleted:
            raise exceptions.NotFound(f"There is no collection {pk}.")
        response = HttpResponse(status=204)
        del response["Content-Type"]
        return response

    async def _update(self, pk: int, *, partial: bool) -> Response:
        caller = self.writer()
        data = self.body(partial=partial)
        if not await _db(Collection.objects.filter(pk=pk, client_id=caller.client_id).exists):
            raise exceptions.NotFound(f"There is no collection {pk}.")
        await self.checked(data)
        collection = await _db(_update, caller.client_id, pk, data)
        if collection is None:  # deleted meanwhile
            raise exceptions.NotFound(f"There is no collection {pk}.")
        return Response(s.CollectionSummary(collection).data)

    # For the clients' scopes (api.clients.authentication.operation_id): each action's operation id.
    list.operation_id = "list_collections"  # type: ignore[attr-defined]
    create.operation_id = "create_collection"  # type: ignore[attr-defined]
    retrieve.operation_id = "get_collection"  # type: ignore[attr-defined]
    update.operation_id = "update_collection"  # type: ignore[attr-defined]
    partial_update.operation_id = "partial_update_collection"  # type: ignore[attr-defined]
    destroy.operation_id = "delete_collection"  # type: ignore[attr-defined]


def _page(client_id: int, *, page: int, page_size: int) -> tuple[int, list[dict[str, Any]]]:
    owned = Collection.objects.filter(client_id=client_id).order_by("id")
    start = (page - 1) * page_size
    rows = list(owned[start : start + page_size].values("id", "name", "created", "updated"))
    items: dict[int, list[dict[str, Any]]] = {}
    ordered = CollectionItem.objects.filter(collection_id__in=[row["id"] for row in rows]).order_by("position")
    for item in ordered.values("collection_id", "product_id", "note"):
        items.setdefault(item["collection_id"], []).append({"product_id": item["product_id"], "note": item["note"]})
    return owned.count(), [{**row, "items": items.get(row["id"], [])} for row in rows]


def _summary(collection: Collection) -> dict[str, Any]:
    items = collection.items.order_by("position").values("product_id", "note")
    return {
        "id": collection.pk,
        "name": collection.name,
        "items": list(items),
        "created": collection.created,
        "updated": collection.updated,
    }


def _write_items(collection: Collection, items: list[dict[str, Any]]) -> None:
    collection.items.all().delete()
    CollectionItem.objects.bulk_create(
        CollectionItem(collection=collection, position=index, product_id=item["product_id"], note=item.get("note", ""))
        for index, item in enumerate(items)
    )


def _create(client_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
    with transaction.atomic():
        collection = Collection.objects.create(client_id=client_id, name=data["name"])
        _write_items(collection, data["items"])
        return _summary(collection)


def _update(client_id: int, pk: int, data: Mapping[str, Any]) -> dict[str, Any] | None:
    with transaction.atomic():
        # A write first, not a read: on SQLite a transaction that reads and then writes cannot wait for a concurrent
        # writer (it fails at once, "database is locked"), one that writes first waits for the lock.
        changes: dict[str, Any] = {"updated": timezone.now()}
        if "name" in data:
            changes["name"] = data["name"]
        if not Collection.objects.filter(pk=pk, client_id=client_id).update(**changes):
            return None
        collection = Collection.objects.get(pk=pk)
        if "items" in data:
            _write_items(collection, data["items"])
        return _summary(collection)
