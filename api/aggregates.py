"""The aggregates this service publishes: which upstream calls make up each response, its shape, and its route.

Each class is the whole endpoint: api/urls.py serves every aggregate with a `route`, and the schema documents it
(its docstring is the operation's summary and description). See `api.aggregation.Aggregate`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import quote

from rest_framework.utils.urls import remove_query_param, replace_query_param

from . import serializers as s
from .aggregation import Aggregate, Batch, Fetch, FetchEach, Parts

__all__ = ["ExternalData", "MultipleExternalData", "ProductList", "ProductOverview", "product_fields"]

CENTS = Decimal("0.01")


# The original `external_data_view`.
class ExternalData(Aggregate):
    """One upstream payload.

    Fetches `slow_data` from the `slow` upstream, validates it and returns it.
    """

    route = "external-data"
    response = s.ExternalData
    tag = "examples"
    example = {}
    data = Fetch(upstream="slow", path="slow_data", serializer=s.SlowData)

    def shape(self, parts: Parts) -> Any:
        return parts.get("data")


# The original `multiple_external_data_view`.
class MultipleExternalData(Aggregate):
    """Three upstream payloads, fetched concurrently.

    Takes about as long as the slowest of the three calls, not their sum.
    """

    route = "multiple-external-data"
    response = s.MultipleExternalData
    tag = "examples"
    example = {}
    first = Fetch(upstream="slow", path="slow_data_1", serializer=s.SlowData)
    second = Fetch(upstream="slow", path="slow_data_2", serializer=s.SlowData)
    third = Fetch(upstream="slow", path="slow_data_3", serializer=s.SlowData)

    def shape(self, parts: Parts) -> Any:
        return {"results": [parts.get("first"), parts.get("second"), parts.get("third")]}


def product_fields(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": data["id"],
        "sku": data["sku"],
        "name": data["name"],
        "description": data["description"],
        "category": data["category"],
        "price": {"amount": data["price"], "currency": data["currency"]},
        "tags": data["tags"],
    }


# DRF's count/next/previous/results page shape, each product enriched without N+1 calls from the client: stock from
# inventory's batch endpoint (one call per 50 SKUs), ratings from reviews (no batch endpoint: one call per product,
# at most 10 at a time).
class ProductList(Aggregate):
    """A page of products.

    The catalog, one page at a time, with links to the next and previous pages. Each product carries its stock
    (`inventory`) and `average_rating`: a product the inventory or reviews service did not answer for has that field
    null and an entry in `missing` with its path (`results[3].inventory`); the rest of the page is unaffected.
    """

    route = "products"
    operation_id = "list_products"
    query = s.ProductListQuery
    response = s.ProductPage
    tag = "products"
    example = {"page": 2, "page_size": 2}
    page = Fetch(
        upstream="catalog",
        path="products",
        params=lambda i: {"page": i.args["page"], "page_size": i.args["page_size"]},
        serializer=s.CatalogPage,
    )
    inventory = FetchEach(
        upstream="inventory",
        of="page",
        items=lambda page: page["items"],
        key=lambda product: product["sku"],
        batch=Batch(path="stock", param="skus", key="sku", size=50),
        serializer=s.InventoryStock,
    )
    reviews = FetchEach(
        upstream="reviews",
        of="page",
        items=lambda page: page["items"],
        key=lambda product: product["id"],
        path="products/{key}/summary",
        concurrency=10,
        serializer=s.ReviewsSummary,
    )

    def shape(self, parts: Parts) -> Any:
        page = parts.get("page")
        results = []
        for index, item in enumerate(page["items"]):
            stock = parts.item("inventory", item["sku"], path=f"results[{index}].inventory")
            review = parts.item("reviews", item["id"], path=f"results[{index}].average_rating")
            results.append(
                {
                    **product_fields(item),
                    "inventory": stock and {"available": stock["available"], "in_stock": stock["available"] > 0},
                    "average_rating": review and review["average_rating"],
                }
            )
        return {"count": page["total"], "results": results, "missing": parts.missing, "stale": parts.stale}

    def complete(self, data: Any, parts: Parts, request: Any) -> Any:
        page, page_size, count = parts.args["page"], parts.args["page_size"], data["count"]
        url = request.build_absolute_uri()
        has_next = page * page_size < count
        data["next"] = replace_query_param(url, "page", page + 1) if has_next else None
        if page <= 1:
            data["previous"] = None
        elif page == 2:
            data["previous"] = remove_query_param(url, "page")
        else:
            # Past the end, point back at the last page that has products.
            last = max(1, -(-count // page_size))
            data["previous"] = replace_query_param(url, "page", min(page - 1, last))
        return data


# A product with its stock, review summary and (with `?currency=`) converted price. inventory and fx need the product
# (its SKU, its currency), so they start when catalog answers; reviews starts at once.
class ProductOverview(Aggregate):
    """A product overview composed from four upstreams.

    catalog is required: its failure fails the request, and an unknown id is a 404. inventory, reviews and fx (with
    `?currency=`) are optional: when one fails the response is still 200, that part is null, and `missing` says which
    part failed and why.
    """

    route = "products/{id:int}"
    query = s.ProductOverviewQuery
    response = s.ProductOverview
    tag = "products"
    example = {"id": 7, "currency": "GBP"}

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
            **product_fields(product),
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
