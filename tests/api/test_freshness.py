"""Freshness the client can use: every aggregate response's `Cache-Control` is the strictest of its parts', its
`ETag` covers the body, and `If-None-Match` with that tag answers 304 with no body (GET and HEAD alike)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from api.views import TributaryViewSet
from config import asgi
from tests.api.helpers import PRODUCT, RATES, REVIEW, STOCK
from tests.api.onloop_views import AsyncToken
from tests.conftest import install_registry
from upstreams import Freshness

CATALOG = "http://catalog.upstream.test"
INVENTORY = "http://inventory.upstream.test"
REVIEWS = "http://reviews.upstream.test"
FX = "http://fx.upstream.test"


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(assert_all_called=False, assert_all_mocked=True)


@pytest.fixture
def upstreams(settings: Any, router: respx.MockRouter) -> Any:
    """Install the registry with extra per-upstream settings (CACHE_TTL, FORWARD_HEADERS, ...), then mock them."""

    def configure(**extra: dict[str, str]) -> respx.MockRouter:
        settings.UPSTREAMS = {name: {**values, **extra.get(name, {})} for name, values in settings.UPSTREAMS.items()}
        install_registry(settings.UPSTREAMS, lambda config: httpx.MockTransport(router.async_handler))
        return router

    return configure


def overview(router: respx.MockRouter, **cache_control: str) -> respx.MockRouter:
    """The product overview's three parts (fx is not called without ?currency=), with these Cache-Control values."""

    def headers(part: str) -> dict[str, str]:
        return {"Cache-Control": cache_control[part]} if part in cache_control else {}

    router.get(f"{CATALOG}/products/7").respond(json=PRODUCT, headers=headers("catalog"))
    router.get(f"{INVENTORY}/stock/SKU-00007").respond(json=STOCK, headers=headers("inventory"))
    router.get(f"{REVIEWS}/products/7/summary").respond(json=REVIEW, headers=headers("reviews"))
    router.get(f"{FX}/rates/USD").respond(json=RATES, headers=headers("fx"))
    return router


def fresh_for(seconds: int, *, private: bool = False) -> set[str]:
    """The Cache-Control values for `seconds` of freshness, give or take the one second a cached part may have
    spent in the cache (max-age is what is left of its freshness, rounded down)."""
    prefix = "private, " if private else ""
    return {f"{prefix}max-age={seconds}", f"{prefix}max-age={seconds - 1}"}


# --- Cache-Control from the parts -----------------------------------------------------------------------------------


async def test_the_smallest_max_age_of_the_parts_wins(api: Any, upstreams: Any) -> None:
    overview(upstreams(), catalog="max-age=300", inventory="public, max-age=30", reviews="max-age=120")

    response = await api.get("/api/products/7/")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "max-age=30"


async def test_s_maxage_counts_when_it_is_the_smaller(api: Any, upstreams: Any) -> None:
    overview(upstreams(), catalog="max-age=300, s-maxage=20", inventory="max-age=60", reviews="max-age=60")

    assert (await api.get("/api/products/7/")).headers["Cache-Control"] == "max-age=20"


async def test_a_part_without_cache_control_counts_with_its_upstreams_cache_ttl(api: Any, upstreams: Any) -> None:
    router = upstreams(catalog={"CACHE_TTL": "45"}, inventory={"CACHE_TTL": "90"}, reviews={"CACHE_TTL": "90"})
    overview(router)

    assert (await api.get("/api/products/7/")).headers["Cache-Control"] == "max-age=45"


async def test_without_cache_control_or_ttl_a_response_is_fresh_for_no_time(api: Any, upstreams: Any) -> None:
    overview(upstreams())

    assert (await api.get("/api/products/7/")).headers["Cache-Control"] == "max-age=0"


async def test_a_private_part_makes_the_response_private(api: Any, upstreams: Any) -> None:
    overview(upstreams(), catalog="max-age=300", inventory="private, max-age=60", reviews="max-age=120")

    assert (await api.get("/api/products/7/")).headers["Cache-Control"] == "private, max-age=60"


async def test_no_store_on_any_part_wins(api: Any, upstreams: Any) -> None:
    overview(upstreams(), catalog="max-age=300", inventory="private, max-age=60", reviews="no-store")

    assert (await api.get("/api/products/7/")).headers["Cache-Control"] == "no-store"


async def test_no_cache_on_a_part_means_max_age_zero(api: Any, upstreams: Any) -> None:
    overview(upstreams(), catalog="max-age=300", inventory="no-cache", reviews="max-age=60")

    assert (await api.get("/api/products/7/")).headers["Cache-Control"] == "max-age=0"


async def test_a_part_fetched_with_the_end_users_headers_makes_the_response_private(api: Any, upstreams: Any) -> None:
    router = upstreams(reviews={"FORWARD_HEADERS": "Accept-Language"})
    overview(router, catalog="max-age=300", inventory="max-age=300", reviews="public, max-age=300")

    forwarded = await api.get("/api/products/7/", headers={"Accept-Language": "fr"})
    not_forwarded = await api.get("/api/products/7/")

    assert forwarded.headers["Cache-Control"] in fresh_for(300, private=True)
    assert not_forwarded.headers["Cache-Control"] in fresh_for(300)


async def test_a_response_for_an_authenticated_client_is_private(
    api: Any, upstreams: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    overview(upstreams(), catalog="max-age=300", inventory="max-age=300", reviews="max-age=300")
    # Whatever authentication the deployment uses: `request.auth` is set for an authenticated client.
    monkeypatch.setattr(TributaryViewSet, "authentication_classes", [AsyncToken])
    monkeypatch.setattr(TributaryViewSet, "permission_classes", [])
    monkeypatch.setattr(TributaryViewSet, "throttle_classes", [])

    authenticated = await api.get("/api/products/7/", headers={"Authorization": "Token alice"})
    anonymous = await api.get("/api/products/7/")

    assert authenticated.status_code == 200
    assert authenticated.headers["Cache-Control"] in fresh_for(300, private=True)
    assert anonymous.headers["Cache-Control"] in fresh_for(300)


async def test_a_response_with_a_missing_part_is_not_to_be_reused(api: Any, upstreams: Any) -> None:
    router = overview(upstreams(), catalog="max-age=300", inventory="max-age=300", reviews="max-age=300")
    router.get(f"{REVIEWS}/products/7/summary").respond(500)

    response = await api.get("/api/products/7/")

    assert response.json()["reviews"] is None
    assert response.headers["Cache-Control"] == "max-age=0"


async def test_a_part_answered_from_our_cache_counts_with_what_is_left_of_its_freshness(
    api: Any, upstreams: Any
) -> None:
    router = overview(upstreams(), catalog="max-age=300", inventory="max-age=100", reviews="max-age=300")
    await api.get("/api/products/7/")
    catalog_calls = router.routes[0].call_count

    cached = await api.get("/api/products/7/")

    assert router.routes[0].call_count == catalog_calls  # all three answered from the cache
    assert cached.headers["Cache-Control"] in fresh_for(100)


async def test_the_products_list_counts_every_chunk_and_item(api: Any, upstreams: Any) -> None:
    router = upstreams()
    page = {"total": 2, "page": 1, "page_size": 20, "items": [PRODUCT, {**PRODUCT, "id": 8, "sku": "SKU-00008"}]}
    router.get(f"{CATALOG}/products").respond(json=page, headers={"Cache-Control": "max-age=600"})
    router.get(f"{INVENTORY}/stock").respond(
        json={"items": [STOCK, {**STOCK, "sku": "SKU-00008"}]}, headers={"Cache-Control": "max-age=500"}
    )
    router.get(f"{REVIEWS}/products/7/summary").respond(json=REVIEW, headers={"Cache-Control": "max-age=400"})
    router.get(f"{REVIEWS}/products/8/summary").respond(
        json={**REVIEW, "product_id": 8}, headers={"Cache-Control": "max-age=40"}
    )

    assert (await api.get("/api/products/")).headers["Cache-Control"] == "max-age=40"


def test_strictest_of_nothing_is_fresh_for_no_time() -> None:
    assert Freshness.strictest([]).header() == "max-age=0"


# --- ETag and 304 ---------------------------------------------------------------------------------------------------


async def test_etag_is_strong_stable_and_changes_with_the_body(api: Any, upstreams: Any) -> None:
    router = overview(upstreams())
    first = await api.get("/api/products/7/")
    again = await api.get("/api/products/7/")
    router.get(f"{INVENTORY}/stock/SKU-00007").respond(json={**STOCK, "available": 2})
    changed = await api.get("/api/products/7/")

    etag = first.headers["ETag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert len(etag) == 34
    assert again.headers["ETag"] == etag
    assert changed.headers["ETag"] != etag


@pytest.mark.parametrize("if_none_match", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
async def test_if_none_match_with_the_tag_answers_304_without_a_body(
    api: Any, upstreams: Any, if_none_match: str
) -> None:
    overview(upstreams(), catalog="max-age=60", inventory="max-age=60", reviews="max-age=60")
    first = await api.get("/api/products/7/")

    response = await api.get(
        "/api/products/7/", headers={"If-None-Match": if_none_match.format(etag=first.headers["ETag"])}
    )

    assert response.status_code == 304
    assert response.content == b""
    assert "Content-Type" not in response.headers
    assert response.headers["ETag"] == first.headers["ETag"]
    assert response.headers["Cache-Control"] in fresh_for(60)


@pytest.mark.parametrize("if_none_match", ['"other"', "W/", "", ",,", '"' + "x" * 500])
async def test_if_none_match_without_the_tag_answers_200(api: Any, upstreams: Any, if_none_match: str) -> None:
    overview(upstreams())

    response = await api.get("/api/products/7/", headers={"If-None-Match": if_none_match})

    assert response.status_code == 200
    assert response.json()["id"] == 7


async def test_an_error_is_never_a_304(api: Any, upstreams: Any) -> None:
    upstreams().get(f"{CATALOG}/products/7").respond(503)

    response = await api.get("/api/products/7/", headers={"If-None-Match": "*"})

    assert response.status_code == 502


async def test_304_round_trip_and_head_over_the_whole_stack(demo: Any) -> None:
    """Through the ASGI application (middleware included) with httpx, on the demo upstreams over real sockets."""
    demo(catalog={"CACHE_TTL": "30"}, inventory={"CACHE_TTL": "20"}, reviews={"CACHE_TTL": "30"})
    transport = httpx.ASGITransport(app=asgi.application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        first = await client.get("/api/products/?page_size=5")
        etag = first.headers["ETag"]

        revalidated = await client.get("/api/products/?page_size=5", headers={"If-None-Match": etag})
        head = await client.head("/api/products/?page_size=5")
        head_revalidated = await client.head("/api/products/?page_size=5", headers={"If-None-Match": etag})
        other_page = await client.get("/api/products/?page_size=6", headers={"If-None-Match": etag})

    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "max-age=20"
    assert revalidated.status_code == 304
    assert revalidated.content == b""
    assert revalidated.headers["ETag"] == etag
    assert revalidated.headers["Cache-Control"].startswith("max-age=")
    assert "Server-Timing" in revalidated.headers
    assert head.status_code == 200
    assert head.headers["ETag"] == etag
    assert head.content == b""
    assert head_revalidated.status_code == 304
    assert other_page.status_code == 200
    assert other_page.headers["ETag"] != etag
