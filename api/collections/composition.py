"""Reading a collection: the database read and the upstream calls of one aggregate, in one fan-out.

collection  Read       the client's collection and its items (the database), 404 when it has none by that id
products    FetchEach  each product from the catalog (no batch endpoint: 10 at a time)
reviews     FetchEach  each product's rating (starts with `products`: it only needs the ids)
inventory   FetchEach  the stock of the products' SKUs, in batches (needs the SKUs the catalog gave)
"""

from __future__ import annotations

from typing import Any

from api import database
from api import serializers as s
from api.aggregates import product_fields
from api.aggregation import Aggregate, Batch, FetchEach, Inputs, Parts, Read

from .models import Collection, CollectionItem

__all__ = ["ComposedCollection", "read_collection"]


async def read_collection(inputs: Inputs) -> dict[str, Any] | None:
    """The caller's collection `id` with its items in order, or None (not theirs, or no such collection), read
    natively async on PostgreSQL (api/database.py)."""
    client_id = inputs.args.get("client_id")
    if client_id is None:
        return None  # an anonymous caller has no collections
    # One query in the usual case: the items with their collection (when it has items, it is theirs).
    owned = CollectionItem.objects.filter(collection_id=inputs.args["id"], collection__client_id=client_id)
    items = await database.afetch(owned.select_related("collection").order_by("position"))
    if items:
        collection = items[0].collection
    else:  # no items: an empty collection of theirs, or none at all
        found = await database.afirst(Collection.objects.filter(pk=inputs.args["id"], client_id=client_id))
        if found is None:
            return None
        collection = found
    return {
        "id": collection.pk,
        "name": collection.name,
        "created": collection.created,
        "updated": collection.updated,
        "items": [{"product_id": item.product_id, "note": item.note} for item in items],
    }


def _products(enriched: Any) -> list[Any]:
    return list(enriched.values.values())


class ComposedCollection(Aggregate):
    """A collection with the catalog data, stock and rating of each of its products."""

    collection = Read(run=read_collection, not_found="There is no collection {id}.")
    products = FetchEach(
        upstream="catalog",
        of="collection",
        items=lambda collection: collection["items"],
        key=lambda item: item["product_id"],
        path="products/{key}",
        concurrency=10,
        serializer=s.CatalogProduct,
    )
    reviews = FetchEach(
        upstream="reviews",
        of="collection",
        items=lambda collection: collection["items"],
        key=lambda item: item["product_id"],
        path="products/{key}/summary",
        concurrency=10,
        serializer=s.ReviewsSummary,
    )
    inventory = FetchEach(
        upstream="inventory",
        of="products",
        items=_products,
        key=lambda product: product["sku"],
        batch=Batch(path="stock", param="skus", key="sku", size=50),
        serializer=s.InventoryStock,
    )

    def shape(self, parts: Parts) -> Any:
        collection = parts.get("collection")
        items = []
        for index, item in enumerate(collection["items"]):
            product = parts.item("products", item["product_id"], path=f"items[{index}].product")
            stock = product and parts.item("inventory", product["sku"], path=f"items[{index}].inventory")
            review = parts.item("reviews", item["product_id"], path=f"items[{index}].average_rating")
            items.append(
                {
                    "product_id": item["product_id"],
                    "note": item["note"],
                    "product": product and product_fields(product),
                    "inventory": stock and {"available": stock["available"], "in_stock": stock["available"] > 0},
                    "average_rating": review and review["average_rating"],
                }
            )
        return {
            **{key: collection[key] for key in ("id", "name", "created", "updated")},
            "items": items,
            "missing": parts.missing,
            "stale": parts.stale,
        }
