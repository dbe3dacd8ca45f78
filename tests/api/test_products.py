"""/api/products/: the paginated list and the composed overview, with every optional part failing in turn."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from tests.api.helpers import PRODUCT, RATES, REVIEW, STOCK, assert_problem, fail

CATALOG = "http://catalog.upstream.test"
INVENTORY = "http://inventory.upstream.test"
REVIEWS = "http://reviews.upstream.test"
FX = "http://fx.upstream.test"


@pytest.fixture
def healthy(upstream_mock: respx.MockRouter) -> respx.MockRouter:
    upstream_mock.get(f"{CATALOG}/products/7").respond(json=PRODUCT)
    upstream_mock.get(f"{INVENTORY}/stock/SKU-00007").respond(json=STOCK)
    upstream_mock.get(f"{REVIEWS}/products/7/summary").respond(json=REVIEW)
    upstream_mock.get(f"{FX}/rates/USD").respond(json=RATES)
    return upstream_mock


async def test_overview_composes_all_four_upstreams(api: Any, healthy: respx.MockRouter) -> None:
    response = await api.get("/api/products/7/?currency=EUR")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "id": 7,
        "sku": "SKU-00007",
        "name": "Gilded Kettle",
        "description": "A kettle.",
        "category": "kitchen",
        "price": {"amount": "20.00", "currency": "USD"},
        "tags": ["gift"],
        "converted_price": {"amount": "18.40", "currency": "EUR", "rate": "0.920000"},
        "inventory": {"available": 3, "in_stock": True, "warehouse": "AMS-1", "updated_at": "2026-01-01T00:00:00Z"},
        "reviews": {"average_rating": 4.5, "count": 12},
        "missing": [],
        "stale": [],
    }


async def test_overview_without_currency_does_not_call_fx(api: Any, healthy: respx.MockRouter) -> None:
    response = await api.get("/api/products/7/")

    assert response.status_code == 200
    assert response.json()["converted_price"] is None
    assert not healthy.routes[3].called


async def test_overview_in_the_products_own_currency_needs_no_fx_call(api: Any, healthy: respx.MockRouter) -> None:
    response = await api.get("/api/products/7/?currency=USD")

    assert response.json()["converted_price"] == {"amount": "20.00", "currency": "USD", "rate": "1.000000"}
    assert not healthy.routes[3].called


@pytest.mark.parametrize(
    ("route", "failure", "part", "code"),
    [
        (1, httpx.Response(500), "inventory", "upstream_status"),
        (2, httpx.ConnectError("refused"), "reviews", "upstream_unreachable"),
        (2, httpx.ReadTimeout("slow"), "reviews", "upstream_timeout"),
        (3, httpx.Response(200, content=b"{", headers={"content-type": "application/json"}), "converted_price",
         "upstream_invalid_json"),
        (1, httpx.Response(200, json={"sku": "SKU-00007", "available": "lots"}), "inventory",
         "upstream_invalid_payload"),
    ],
)  # fmt: skip
async def test_failed_optional_part_gives_200_with_the_gap_reported(
    api: Any, healthy: respx.MockRouter, route: int, failure: Any, part: str, code: str
) -> None:
    fail(healthy.routes[route], failure)

    response = await api.get("/api/products/7/?currency=EUR")

    assert response.status_code == 200
    body = response.json()
    assert body[part] is None
    assert len(body["missing"]) == 1
    missing = body["missing"][0]
    assert missing["code"] == code
    assert missing["source"] == {"converted_price": "fx"}.get(part, part)
    assert missing["detail"]
    # The other parts are still there.
    assert body["name"] == "Gilded Kettle"
    assert sum(body[p] is None for p in ("inventory", "reviews", "converted_price")) == 1


async def test_unsupported_target_currency_is_reported_missing(api: Any, healthy: respx.MockRouter) -> None:
    response = await api.get("/api/products/7/?currency=XAU")

    body = response.json()
    assert response.status_code == 200
    assert body["converted_price"] is None
    assert body["missing"] == [
        {
            "source": "fx",
            "upstream": "fx",
            "code": "currency_unsupported",
            "detail": "No exchange rate from USD to XAU.",
        }
    ]


async def test_unknown_product_is_404(api: Any, upstream_mock: respx.MockRouter) -> None:
    upstream_mock.get(f"{CATALOG}/products/999").respond(404, json={"error": "not_found"})
    upstream_mock.get(f"{REVIEWS}/products/999/summary").respond(404, json={"error": "not_found"})

    response = await api.get("/api/products/999/")

    assert_problem(response, 404, "not_found")
    assert response.json()["detail"] == "There is no product 999."


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (httpx.Response(500, json={}), 502, "upstream_status"),
        (httpx.ConnectError("refused"), 503, "upstream_unreachable"),
        (httpx.ReadTimeout("slow"), 504, "upstream_timeout"),
        (httpx.Response(200, text="<html>", headers={"content-type": "text/html"}), 502, "upstream_bad_content_type"),
    ],
)
async def test_required_catalog_failure_fails_the_request(
    api: Any, healthy: respx.MockRouter, failure: Any, status: int, code: str
) -> None:
    fail(healthy.routes[0], failure)

    response = await api.get("/api/products/7/")

    body = assert_problem(response, status, code)
    assert body["upstream"] == "catalog"


async def test_catalog_payload_failing_validation_is_502_naming_fields_not_values(
    api: Any, healthy: respx.MockRouter
) -> None:
    healthy.routes[0].respond(json={**PRODUCT, "price": "twelve", "currency": "dollars", "sku": None})

    response = await api.get("/api/products/7/")

    body = assert_problem(response, 502, "upstream_invalid_payload")
    assert body["upstream"] == "catalog"
    assert {e["field"] for e in body["errors"]} == {"price", "currency", "sku"}
    assert "twelve" not in response.content.decode()
    assert "dollars" not in response.content.decode()


@pytest.mark.parametrize(
    ("query", "field"),
    [("currency=eur", "currency"), ("currency=EURO", "currency")],
)
async def test_invalid_overview_query_is_400_with_field_errors(
    api: Any, upstream_mock: respx.MockRouter, query: str, field: str
) -> None:
    response = await api.get(f"/api/products/7/?{query}")

    body = assert_problem(response, 400, "invalid_request")
    assert [e["field"] for e in body["errors"]] == [field]
    assert not upstream_mock.calls


async def test_non_numeric_product_id_is_404(api: Any, upstream_mock: respx.MockRouter) -> None:
    response = await api.get("/api/products/abc/")

    assert_problem(response, 404, "not_found")


# --- The list ------------------------------------------------------------------------------------------------------


def catalog_page(page: int, page_size: int, total: int = 5) -> dict[str, Any]:
    start = (page - 1) * page_size
    ids = range(start + 1, min(start + page_size, total) + 1)
    return {
        "total": total,
        "page": page,
        "page_size": page_size,
        "items": [{**PRODUCT, "id": i, "sku": f"SKU-{i:05d}"} for i in ids],
    }


async def test_list_passes_paging_through_and_links_pages(api: Any, upstream_mock: respx.MockRouter) -> None:
    route = upstream_mock.get(f"{CATALOG}/products").respond(json=catalog_page(2, 2))

    response = await api.get("/api/products/?page=2&page_size=2")

    assert response.status_code == 200
    body = response.json()
    assert route.calls.last.request.url.params == httpx.QueryParams({"page": "2", "page_size": "2"})
    assert body["count"] == 5
    assert [p["id"] for p in body["results"]] == [3, 4]
    assert body["results"][0]["price"] == {"amount": "20.00", "currency": "USD"}
    assert body["next"] == "http://testserver/api/products/?page=3&page_size=2"
    assert body["previous"] == "http://testserver/api/products/?page_size=2"


async def test_list_defaults_and_last_page_has_no_next(api: Any, upstream_mock: respx.MockRouter) -> None:
    route = upstream_mock.get(f"{CATALOG}/products").respond(json=catalog_page(1, 20))

    body = (await api.get("/api/products/")).json()

    assert route.calls.last.request.url.params == httpx.QueryParams({"page": "1", "page_size": "20"})
    assert body["next"] is None
    assert body["previous"] is None
    assert len(body["results"]) == 5


async def test_page_past_the_end_is_empty_and_points_back_to_the_last_page(
    api: Any, upstream_mock: respx.MockRouter
) -> None:
    upstream_mock.get(f"{CATALOG}/products").respond(json=catalog_page(9, 2))

    body = (await api.get("/api/products/?page=9&page_size=2")).json()

    assert body["results"] == []
    assert body["next"] is None
    assert body["previous"] == "http://testserver/api/products/?page=3&page_size=2"


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ("page=0", "page", "min_value"),
        ("page=abc", "page", "invalid"),
        ("page_size=101", "page_size", "max_value"),
        ("page_size=0&page=-1", "page", "min_value"),
    ],
)
async def test_invalid_paging_is_400(
    api: Any, upstream_mock: respx.MockRouter, query: str, field: str, code: str
) -> None:
    response = await api.get(f"/api/products/?{query}")

    body = assert_problem(response, 400, "invalid_request")
    assert {"field": field, "code": code} in [{"field": e["field"], "code": e["code"]} for e in body["errors"]]
    assert not upstream_mock.calls


async def test_list_with_a_malformed_catalog_page_is_502(api: Any, upstream_mock: respx.MockRouter) -> None:
    upstream_mock.get(f"{CATALOG}/products").respond(json={"total": 1, "page": 1, "page_size": 1, "items": [{}]})

    body = assert_problem(await api.get("/api/products/"), 502, "upstream_invalid_payload")

    assert "items[0].id" in {e["field"] for e in body["errors"]}
