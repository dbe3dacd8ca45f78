"""The collections' shapes: what a client writes (validated by DRF, then against the catalog) and what it reads."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from api import serializers as s

__all__ = [
    "MAX_ITEMS",
    "CollectionDetail",
    "CollectionListQuery",
    "CollectionPage",
    "CollectionSummary",
    "CollectionWrite",
]

MAX_ITEMS = 50  # products per collection


class CollectionListQuery(serializers.Serializer):
    page = s.QueryInteger(min_value=1, max_value=100_000, default=1, help_text="1-based page number.")
    page_size = s.QueryInteger(min_value=1, max_value=100, default=20, help_text="Collections per page.")


class ItemWrite(serializers.Serializer):
    product_id = serializers.IntegerField(min_value=1, max_value=2_147_483_647, help_text="A catalog product id.")
    note = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")


class CollectionWrite(serializers.Serializer):
    """A whole collection: its name and its products, in order (create, and update with PUT)."""

    name = serializers.CharField(max_length=100)
    items = ItemWrite(  # type: ignore[call-arg]  # ListSerializer takes max_length (DRF 3.14); the stubs do not know
        many=True,
        max_length=MAX_ITEMS,
        help_text=f"At most {MAX_ITEMS} products, each once, in the order they are shown; each id must exist in "
        "the catalog.",
    )

    def validate_items(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: set[int] = set()
        for item in items:
            if item["product_id"] in seen:
                raise serializers.ValidationError(f"Product {item['product_id']} is listed twice.", code="duplicate")
            seen.add(item["product_id"])
        return items


class Item(serializers.Serializer):
    product_id = serializers.IntegerField()
    note = serializers.CharField(allow_blank=True)


@extend_schema_serializer(many=False)
class CollectionSummary(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    items = Item(many=True)
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()


@extend_schema_serializer(many=False)
class CollectionPage(serializers.Serializer):
    count = serializers.IntegerField(help_text="The client's collections.")
    next = serializers.URLField(allow_null=True, help_text="The next page, or null on the last page.")
    previous = serializers.URLField(allow_null=True, help_text="The previous page, or null on the first page.")
    results = CollectionSummary(many=True)


class ComposedItem(serializers.Serializer):
    product_id = serializers.IntegerField()
    note = serializers.CharField(allow_blank=True)
    product = s.Product(allow_null=True, help_text="Null when the catalog did not answer for it (see `missing`).")
    inventory = s.StockLevel(allow_null=True, help_text="Null when the inventory did not answer for it.")
    average_rating = serializers.FloatField(
        allow_null=True, help_text="Null when the product has no reviews, or the reviews service did not answer."
    )


@extend_schema_serializer(many=False)
class CollectionDetail(serializers.Serializer):
    """A collection composed with the catalog, stock and ratings of its products."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()
    items = ComposedItem(many=True)
    missing = s.MissingPart(many=True, help_text="Items whose product, stock or rating could not be filled.")
    stale = s.StalePart(many=True, help_text="Parts answered from a cached copy because the upstream failed.")
