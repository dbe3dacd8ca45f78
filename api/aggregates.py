"""The aggregates this service publishes: which upstream calls make up each response, and its shape."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import quote

from . import serializers as s
from .aggregation import Aggregate, Fetch, Parts

__all__ = ["AGGREGATES", "ExternalData", "MultipleExternalData", "ProductList", "ProductOverview"]

CENTS = Decimal("0.01")


class ExternalData(Aggregate):
    """One upstream payload, validated (the original `external_data_view`)."""

    data = Fetch(upstream="slow", path="slow_data", serializer=s.SlowData)

    def shape(self, parts: Parts) -> Any:
        return parts.get("data")


class MultipleExternalData(Aggregate):
    """Three independent upstream payloads fetched concurrently (the original `multiple_external_data_view`)."""

    first = Fetch(upstream="slow", path="slow_data_1", serializer=s.SlowData)
    second = Fetch(upstream="slow", path="slow_data_2", serializer=s.SlowData)
    third = Fetch(upstream="slow", path="slow_data_3", serializer=s.SlowData)

    def shape(self, parts: Parts) -> Any:
        return {"results": [parts.get("first"), parts.get("second"), parts.get("third")]}


def _product(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": data["id"],
        "sku": data["sku"],
        "name": data["name"],
        "description": data["description"],
        "category": data["category"],
        "price": {"amount": data["price"], "currency": data["currency"]},
        "tags": data["tags"],
    }


class ProductList(Aggregate):
    """A page of the catalog, in DRF's count/next/previous/results shape (links are added by the view)."""

    page = Fetch(
        upstream="catalog",
        path="products",
        params=lambda i: {"page": i.args["page"], "page_size": i.args["page_size"]},
        serializer=s.CatalogPage,
    )

    def shape(self, parts: Parts) -> Any:
        page = parts.get("page")
        return {"count": page["total"], "results": [_product(item) for item in page["items"]]}


class ProductOverview(Aggregate):
    """A product with its stock, review summary and (with `?currency=`) converted price.

    catalog is required (its 404 is our 404); the rest are optional and reported in `missing` when they fail.
    inventory and fx need the product (its SKU, its currency), so they start when catalog answers; reviews starts
    at once.
    """

    product = Fetch(
        upstream="catalog", path="products/{id}", serializer=s.CatalogProduct, not_found="There is no product {id}."
    )
    inventory = Fetch(
        upstream="inventory",
        path=lambda i: "stock/" + quote(i.results["product"]["sku"], safe=""),
        needs=("product",),
        required=False,
        serializer=s.InventoryStock,
    )
    reviews = Fetch(upstream="reviews", path="products/{id}/summary", required=False, serializer=s.ReviewsSummary)
    fx = Fetch(
        upstream="fx",
        path=lambda i: "rates/" + i.results["product"]["currency"],
        needs=("product",),
        required=False,
        # Only when a conversion is asked for, into a currency other than the product's own.
        when=lambda i: i.args.get("currency") not in (None, i.results["product"]["currency"]),
        serializer=s.FxRates,
    )

    def shape(self, parts: Parts) -> Any:
        product = parts.get("product")
        stock = parts.get("inventory")
        reviews = parts.get("reviews")
        return {
            **_product(product),
            "converted_price": self._converted_price(parts, product),
            "inventory": stock
            and {
                "available": stock["available"],
                "in_stock": stock["available"] > 0,
                "warehouse": stock["warehouse"],
                "updated_at": stock["updated_at"],
            },
            "reviews": reviews and {"average_rating": reviews["average_rating"], "count": reviews["count"]},
            "missing": parts.missing,
            "stale": parts.stale,
        }

    @staticmethod
    def _converted_price(parts: Parts, product: dict[str, Any]) -> dict[str, Any] | None:
        target = parts.args.get("currency")
        if target is None:
            return None
        if target == product["currency"]:
            rate = Decimal(1)
        else:
            rates = parts.get("fx")
            if rates is None:
                return None  # fx failed: already reported in `missing`
            if target not in rates["rates"]:
                parts.missing.append(
                    {
                        "source": "fx",
                        "upstream": "fx",
                        "code": "currency_unsupported",
                        "detail": f"No exchange rate from {product['currency']} to {target}.",
                    }
                )
                return None
            rate = rates["rates"][target]
        amount = (product["price"] * rate).quantize(CENTS, rounding=ROUND_HALF_EVEN)
        return {"amount": amount, "currency": target, "rate": rate}


AGGREGATES: tuple[type[Aggregate], ...] = (ExternalData, MultipleExternalData, ProductList, ProductOverview)
