"""List enrichment (`FetchEach`): a page of products gains stock and ratings without N+1 calls from the client.

Call counts and concurrency are measured where the calls arrive: the demo upstreams over real sockets count requests
and the most in flight at once per service. Chunk failures, items left out of a batch answer and chunks cut short by
the request's deadline use respx, which lets each chunk answer differently.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import pytest
import respx

from api import aggregates
from api.aggregation import Aggregate, Batch, Fetch, FetchEach, Parts
from api.serializers import CatalogPage, InventoryStock
from tests.api.helpers import PRODUCT
from upstreams import get_registry
from upstreams.demo import data

CATALOG = "http://catalog.upstream.test"
INVENTORY = "http://inventory.upstream.test"
REVIEWS = "http://reviews.upstream.test"
REVIEWS_AT_ONCE = aggregates.ProductList.fetches["reviews"].concurrency  # type: ignore[union-attr]


def page_of(ids: list[int], *, skus: list[str] | None = None) -> dict[str, Any]:
    skus = skus or [f"SKU-{i:05d}" for i in ids]
    items = [{**PRODUCT, "id": i, "sku": sku} for i, sku in zip(ids, skus, strict=True)]
    return {"total": 120, "page": 1, "page_size": len(ids), "items": items}


def stock(sku: str, available: int = 3) -> dict[str, Any]:
    return {"sku": sku, "available": available, "warehouse": "AMS-1", "updated_at": "2026-01-01T00:00:00Z"}


def review(product_id: int, rating: float | None = 4.0) -> dict[str, Any]:
    return {"product_id": product_id, "average_rating": rating, "count": 0 if rating is None else 3}


@pytest.fixture
def chunks_of_two(monkeypatch: pytest.MonkeyPatch) -> None:
    """The products list with inventory batches of two SKUs, so a page of four makes two chunks."""
    inventory = aggregates.ProductList.fetches["inventory"]
    assert isinstance(inventory, FetchEach)
    assert inventory.batch is not None
    monkeypatch.setitem(
        aggregates.ProductList.fetches, "inventory", replace(inventory, batch=replace(inventory.batch, size=2))
    )


def mock_reviews(router: respx.MockRouter, ids: list[int]) -> None:
    for i in ids:
        router.get(f"{REVIEWS}/products/{i}/summary").respond(json=review(i))


# --- Call counts, over real sockets ---------------------------------------------------------------------------------


async def test_a_page_of_twenty_costs_one_catalog_one_inventory_and_twenty_review_calls_k_at_a_time(
    api: Any, demo: Any
) -> None:
    upstreams = demo(latency_ms=20)  # slow enough that review calls overlap, if they may

    response = await api.get("/api/products/?page=1&page_size=20")

    assert response.status_code == 200
    stats = upstreams.stats
    assert stats.service_requests == {"catalog": 1, "inventory": 1, "reviews": 20}
    assert stats.service_max_in_flight["reviews"] == REVIEWS_AT_ONCE  # bounded, and the bound is reached
    body = response.json()
    assert body["missing"] == []
    assert len(body["results"]) == 20
    for item in body["results"]:
        expected_stock = data.stock(item["sku"])
        assert expected_stock is not None
        assert item["inventory"] == {
            "available": expected_stock["available"],
            "in_stock": expected_stock["available"] > 0,
        }
        expected_review = data.review_summary(item["id"])
        assert expected_review is not None
        assert item["average_rating"] == expected_review["average_rating"]
    assert {item["inventory"]["in_stock"] for item in body["results"]} == {True, False}  # product 6, 12, 18
    assert None in {item["average_rating"] for item in body["results"]}  # product 8, 16: no reviews yet
    assert "inventory;dur=" in response.headers["Server-Timing"]
    assert 'desc="reviews 20 calls"' in response.headers["Server-Timing"]


async def test_the_second_identical_page_is_answered_from_the_cache_chunk_by_chunk(api: Any, demo: Any) -> None:
    upstreams = demo(catalog={"CACHE_TTL": "60"}, inventory={"CACHE_TTL": "60"}, reviews={"CACHE_TTL": "60"})
    first = await api.get("/api/products/?page_size=5")
    upstreams.stats.reset()

    second = await api.get("/api/products/?page_size=5")

    assert second.json() == first.json()
    assert upstreams.stats.service_requests == {}


async def test_an_empty_page_makes_no_enrichment_call(api: Any, demo: Any) -> None:
    upstreams = demo()

    response = await api.get("/api/products/?page=99")

    assert response.json()["results"] == []
    assert upstreams.stats.service_requests == {"catalog": 1}


# --- Keys, chunks and answers ---------------------------------------------------------------------------------------


async def test_keys_are_de_duplicated_and_sent_in_chunks(
    api: Any, upstream_mock: respx.MockRouter, chunks_of_two: None
) -> None:
    skus = ["SKU-00001", "SKU-00002", "SKU-00001", "SKU-00003"]
    upstream_mock.get(f"{CATALOG}/products").respond(json=page_of([1, 2, 3, 4], skus=skus))
    batch = upstream_mock.get(f"{INVENTORY}/stock").mock(
        side_effect=lambda request: httpx.Response(
            200, json={"items": [stock(sku) for sku in request.url.params["skus"].split(",")]}
        )
    )
    mock_reviews(upstream_mock, [1, 2, 3, 4])

    body = (await api.get("/api/products/")).json()

    assert sorted(call.request.url.params["skus"] for call in batch.calls) == ["SKU-00001,SKU-00002", "SKU-00003"]
    assert [item["inventory"] for item in body["results"]] == [{"available": 3, "in_stock": True}] * 4
    assert body["missing"] == []


async def test_batch_answers_are_mapped_back_by_key_never_by_position(
    api: Any, upstream_mock: respx.MockRouter
) -> None:
    upstream_mock.get(f"{CATALOG}/products").respond(json=page_of([1, 2, 3]))
    # Reversed, with an answer nobody asked for, and SKU-00002 left out.
    answer = [stock("SKU-00003", 30), stock("SKU-00099", 99), stock("SKU-00001", 0)]
    upstream_mock.get(f"{INVENTORY}/stock").respond(json={"items": answer})
    mock_reviews(upstream_mock, [1, 2, 3])

    response = await api.get("/api/products/")

    assert response.status_code == 200
    body = response.json()
    assert [item["inventory"] for item in body["results"]] == [
        {"available": 0, "in_stock": False},
        None,
        {"available": 30, "in_stock": True},
    ]
    assert body["missing"] == [
        {
            "source": "inventory",
            "upstream": "inventory",
            "code": "upstream_not_found",
            "detail": "The upstream service returned nothing for this item.",
            "path": "results[1].inventory",
        }
    ]
    assert [item["average_rating"] for item in body["results"]] == [4.0, 4.0, 4.0]


async def test_a_failed_chunk_leaves_only_its_items_null_each_reported(
    api: Any, upstream_mock: respx.MockRouter, chunks_of_two: None
) -> None:
    upstream_mock.get(f"{CATALOG}/products").respond(json=page_of([1, 2, 3, 4]))
    upstream_mock.get(f"{INVENTORY}/stock", params={"skus": "SKU-00001,SKU-00002"}).respond(
        json={"items": [stock("SKU-00001"), stock("SKU-00002")]}
    )
    failing = upstream_mock.get(f"{INVENTORY}/stock", params={"skus": "SKU-00003,SKU-00004"}).respond(503)
    mock_reviews(upstream_mock, [1, 2, 3, 4])

    response = await api.get("/api/products/")

    assert response.status_code == 200
    body = response.json()
    assert [item["inventory"] is None for item in body["results"]] == [False, False, True, True]
    assert [(m["path"], m["code"], m["source"]) for m in body["missing"]] == [
        ("results[2].inventory", "upstream_status", "inventory"),
        ("results[3].inventory", "upstream_status", "inventory"),
    ]
    assert failing.call_count == 1 + get_registry().client("inventory").config.retry.retries  # retried, per chunk
    assert [item["average_rating"] for item in body["results"]] == [4.0] * 4
    assert 'desc="inventory 2 calls 1 failed"' in response.headers["Server-Timing"]


async def test_an_item_in_a_batch_answer_that_fails_validation_is_missing_alone(
    api: Any, upstream_mock: respx.MockRouter
) -> None:
    upstream_mock.get(f"{CATALOG}/products").respond(json=page_of([1, 2]))
    answer = [stock("SKU-00001"), {**stock("SKU-00002"), "available": "lots"}]
    upstream_mock.get(f"{INVENTORY}/stock").respond(json={"items": answer})
    mock_reviews(upstream_mock, [1, 2])

    body = (await api.get("/api/products/")).json()

    assert [item["inventory"] is None for item in body["results"]] == [False, True]
    assert [(m["path"], m["code"]) for m in body["missing"]] == [("results[1].inventory", "upstream_invalid_payload")]


async def test_a_batch_answer_of_the_wrong_shape_fails_its_chunk(api: Any, upstream_mock: respx.MockRouter) -> None:
    upstream_mock.get(f"{CATALOG}/products").respond(json=page_of([1]))
    upstream_mock.get(f"{INVENTORY}/stock").respond(json={"items": "none"})
    mock_reviews(upstream_mock, [1])

    body = (await api.get("/api/products/")).json()

    assert body["results"][0]["inventory"] is None
    assert [(m["path"], m["code"]) for m in body["missing"]] == [("results[0].inventory", "upstream_invalid_payload")]


async def test_per_item_failures_are_reported_per_item(api: Any, upstream_mock: respx.MockRouter) -> None:
    upstream_mock.get(f"{CATALOG}/products").respond(json=page_of([1, 2, 3]))
    upstream_mock.get(f"{INVENTORY}/stock").respond(json={"items": [stock(f"SKU-0000{i}") for i in (1, 2, 3)]})
    upstream_mock.get(f"{REVIEWS}/products/1/summary").respond(json=review(1, None))
    upstream_mock.get(f"{REVIEWS}/products/2/summary").respond(404, json={"error": "not_found"})
    upstream_mock.get(f"{REVIEWS}/products/3/summary").mock(side_effect=httpx.ConnectError("refused"))

    response = await api.get("/api/products/")

    assert response.status_code == 200
    body = response.json()
    assert [item["average_rating"] for item in body["results"]] == [None, None, None]
    assert [(m["path"], m["code"]) for m in body["missing"]] == [
        ("results[1].average_rating", "upstream_not_found"),
        ("results[2].average_rating", "upstream_unreachable"),
    ]  # product 1 has no reviews: null, and nothing missing


async def test_a_chunk_cut_short_by_the_request_deadline_leaves_the_rest_of_the_page(
    api: Any, upstream_mock: respx.MockRouter, chunks_of_two: None
) -> None:
    async def slow_second_chunk(request: httpx.Request) -> httpx.Response:
        skus = request.url.params["skus"].split(",")
        if "SKU-00003" in skus:
            await asyncio.sleep(30)  # cancelled by the deadline
        return httpx.Response(200, json={"items": [stock(sku) for sku in skus]})

    upstream_mock.get(f"{CATALOG}/products").respond(json=page_of([1, 2, 3, 4]))
    upstream_mock.get(f"{INVENTORY}/stock").mock(side_effect=slow_second_chunk)
    mock_reviews(upstream_mock, [1, 2, 3, 4])

    response = await api.get("/api/products/", headers={"Request-Timeout": "0.5"})

    assert response.status_code == 200
    body = response.json()
    assert [item["inventory"] is None for item in body["results"]] == [False, False, True, True]
    assert [(m["path"], m["code"]) for m in body["missing"]] == [
        ("results[2].inventory", "deadline_exceeded"),
        ("results[3].inventory", "deadline_exceeded"),
    ]
    assert [item["average_rating"] for item in body["results"]] == [4.0] * 4


async def test_a_failed_catalog_page_is_still_the_requests_failure(api: Any, upstream_mock: respx.MockRouter) -> None:
    upstream_mock.get(f"{CATALOG}/products").respond(503)
    inventory = upstream_mock.get(f"{INVENTORY}/stock").respond(json={"items": []})

    response = await api.get("/api/products/")

    assert response.status_code == 502
    assert not inventory.called


# --- Declarations ---------------------------------------------------------------------------------------------------


def enrichment(**overrides: Any) -> FetchEach:
    values: dict[str, Any] = {
        "upstream": "inventory",
        "of": "page",
        "items": lambda page: page["items"],
        "key": lambda item: item["sku"],
        "batch": Batch(path="stock", param="skus", key="sku"),
        "serializer": InventoryStock,
    }
    return FetchEach(**{**values, **overrides})


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"path": "stock/{key}"}, TypeError, "exactly one of"),
        ({"batch": None}, TypeError, "exactly one of"),
        ({"batch": None, "path": "stock"}, TypeError, "{key}"),
        ({"concurrency": 0}, ValueError, "concurrency"),
    ],
)
def test_a_misdeclared_enrichment_is_refused_where_it_is_declared(
    overrides: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        enrichment(**overrides)


def test_a_batch_of_no_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        Batch(path="stock", param="skus", key="sku", size=0)


def test_an_enrichment_of_an_unknown_part_is_refused_at_import_time() -> None:
    with pytest.raises(ValueError, match="unknown"):

        class Typo(Aggregate):
            pages = Fetch(upstream="catalog", path="products", serializer=CatalogPage)
            stock = enrichment(of="page")


def test_an_enrichment_in_a_cycle_is_refused_at_import_time() -> None:
    with pytest.raises(ValueError, match="cycle"):

        class Cycle(Aggregate):
            page = Fetch(upstream="catalog", path="products", serializer=CatalogPage, needs=("stock",))
            stock = enrichment()


async def test_an_aggregate_of_its_own_can_enrich_any_list(upstream_mock: respx.MockRouter) -> None:
    class Shelf(Aggregate):
        page = Fetch(upstream="catalog", path="products", serializer=CatalogPage)
        stock = enrichment(batch=None, path="stock/{key}", concurrency=1)

        def shape(self, parts: Parts) -> Any:
            return [parts.item("stock", p["sku"], path=f"[{i}]") for i, p in enumerate(parts.get("page")["items"])]

    upstream_mock.get(f"{CATALOG}/products").respond(json=page_of([1, 2], skus=["A/1", "B"]))
    single = upstream_mock.get(url__regex=rf"{INVENTORY}/stock/.*").mock(
        side_effect=lambda request: httpx.Response(200, json=stock(request.url.path.rsplit("/", 1)[1]))
    )

    shelf, parts = await Shelf().build({})

    assert [call.request.url.raw_path for call in single.calls] == [b"/stock/A%2F1", b"/stock/B"]
    assert [item["available"] for item in shelf] == [3, 3]
    assert parts.missing == []


async def test_a_request_keeps_how_its_calls_were_fetched_but_not_their_raw_payloads(
    upstream_mock: respx.MockRouter,
) -> None:
    """The decoded upstream JSON is freed once validated (or answered), not held until the response is sent: only
    the validated data and each call's cache status, attempts and freshness stay with the request."""

    class Shelf(Aggregate):
        page = Fetch(upstream="catalog", path="products", serializer=CatalogPage)
        stock = enrichment(batch=None, path="stock/{key}", concurrency=1)

        def shape(self, parts: Parts) -> Any:
            return parts.get("page")

    upstream_mock.get(f"{CATALOG}/products").respond(json=page_of([1, 2], skus=["A", "B"]))
    upstream_mock.get(url__regex=rf"{INVENTORY}/stock/.*").mock(
        side_effect=lambda request: httpx.Response(200, json=stock(request.url.path.rsplit("/", 1)[1]))
    )

    shelf, parts = await Shelf().build({})

    assert [item["sku"] for item in shelf["items"]] == ["A", "B"]
    kept = [timing.fetched for timing in parts.timings if timing.fetched is not None]
    assert [fetched.cache for fetched in kept] == ["miss"]
    assert all(fetched.payload is None for fetched in kept)
    enriched = parts.results["stock"]
    assert len(enriched.fetched) == 2
    assert all(fetched.payload is None and fetched.cache == "miss" for fetched in enriched.fetched)
