"""Per-client product collections: CRUD through the API with two clients' keys and none, every write checked
against the catalog (unknown ids, catalog down: nothing written), and the read composed with the catalog, stock and
ratings in one fan-out with the database read."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import respx
from asgiref.sync import sync_to_async
from django.db import OperationalError

from api import database
from api.clients.keys import create_key
from api.clients.models import Client
from api.collections.models import Collection, CollectionItem
from api.collections.serializers import MAX_ITEMS
from tests.api.helpers import PRODUCT, REVIEW, STOCK, assert_problem, fail

pytestmark = pytest.mark.django_db(transaction=True)

CATALOG = "http://catalog.upstream.test"
INVENTORY = "http://inventory.upstream.test"
REVIEWS = "http://reviews.upstream.test"
KNOWN = (7, 8, 9)


async def new_key(name: str) -> dict[str, str]:
    def make() -> str:
        client, _ = Client.objects.get_or_create(name=name)
        return create_key(client, name="test").key

    return {"Authorization": f"Bearer {await sync_to_async(make)()}"}


@pytest.fixture
async def alice() -> dict[str, str]:
    return await new_key("alice")


@pytest.fixture
async def bob() -> dict[str, str]:
    return await new_key("bob")


@pytest.fixture
def catalog(upstream_mock: respx.MockRouter) -> respx.MockRouter:
    """Products 7, 8 and 9 exist (any other id is a 404), with stock and reviews."""

    def product(request: httpx.Request) -> httpx.Response:
        product_id = int(request.url.path.rsplit("/", 1)[1])
        if product_id not in KNOWN:
            return httpx.Response(404, json={"error": "not_found"})
        return httpx.Response(200, json={**PRODUCT, "id": product_id, "sku": f"SKU-{product_id:05d}"})

    def stock(request: httpx.Request) -> httpx.Response:
        skus = request.url.params["skus"].split(",")
        return httpx.Response(200, json={"items": [{**STOCK, "sku": sku} for sku in skus]})

    upstream_mock.get(url__regex=rf"{CATALOG}/products/[0-9]+$").mock(side_effect=product)
    upstream_mock.get(f"{INVENTORY}/stock").mock(side_effect=stock)
    for product_id in KNOWN:
        upstream_mock.get(f"{REVIEWS}/products/{product_id}/summary").respond(json={**REVIEW, "product_id": product_id})
    return upstream_mock


async def post(api: Any, body: Any, headers: dict[str, str], path: str = "/api/collections/") -> Any:
    return await api.post(path, data=orjson.dumps(body), content_type="application/json", headers=headers)


async def send(api: Any, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return await getattr(api, method)(path, data=orjson.dumps(body), content_type="application/json", headers=headers)


async def stored() -> int:
    return await Collection.objects.acount()


WISHLIST = {"name": "Wishlist", "items": [{"product_id": 8, "note": "blue one"}, {"product_id": 7}]}


# --- Create, read, update, delete ----------------------------------------------------------------------------------


async def test_create_then_read_it_composed_with_catalog_stock_and_ratings(
    api: Any, alice: dict[str, str], catalog: respx.MockRouter
) -> None:
    created = await post(api, WISHLIST, alice)

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["name"] == "Wishlist"
    assert body["items"] == [{"product_id": 8, "note": "blue one"}, {"product_id": 7, "note": ""}]

    response = await api.get(f"/api/collections/{body['id']}/", headers=alice)

    assert response.status_code == 200
    detail = response.json()
    assert detail["id"] == body["id"]
    assert [item["product_id"] for item in detail["items"]] == [8, 7]
    assert detail["items"][0]["note"] == "blue one"
    assert detail["items"][0]["product"]["sku"] == "SKU-00008"
    assert detail["items"][0]["product"]["price"] == {"amount": "20.00", "currency": "USD"}
    assert detail["items"][0]["inventory"] == {"available": 3, "in_stock": True}
    assert detail["items"][0]["average_rating"] == 4.5
    assert detail["missing"] == []
    # The database read is a part of the aggregate, beside the upstream calls.
    timing = response.headers["Server-Timing"]
    assert "collection;dur=" in timing
    assert 'desc="database read"' in timing
    assert 'desc="catalog 2 calls"' in timing
    assert 'desc="inventory 1 call"' in timing
    assert response.headers["Cache-Control"] == "private, max-age=0"
    assert response.headers["ETag"]


async def test_list_is_paginated_and_holds_only_the_callers_collections(
    api: Any, alice: dict[str, str], bob: dict[str, str], catalog: respx.MockRouter
) -> None:
    for name in ("one", "two", "three"):
        assert (await post(api, {"name": name, "items": [{"product_id": 7}]}, alice)).status_code == 201
    await post(api, {"name": "bob's", "items": []}, bob)

    first = (await api.get("/api/collections/?page_size=2", headers=alice)).json()
    second = (await api.get("/api/collections/?page=2&page_size=2", headers=alice)).json()

    assert first["count"] == 3
    assert [c["name"] for c in first["results"]] == ["one", "two"]
    assert first["results"][0]["items"] == [{"product_id": 7, "note": ""}]
    assert first["next"] == "http://testserver/api/collections/?page=2&page_size=2"
    assert first["previous"] is None
    assert [c["name"] for c in second["results"]] == ["three"]
    assert second["next"] is None
    assert second["previous"] == "http://testserver/api/collections/?page_size=2"


async def test_put_replaces_patch_changes_part_and_delete_removes(
    api: Any, alice: dict[str, str], catalog: respx.MockRouter
) -> None:
    created = (await post(api, WISHLIST, alice)).json()
    path = f"/api/collections/{created['id']}/"

    replaced = await send(api, "put", path, {"name": "Gifts", "items": [{"product_id": 9, "note": "x"}]}, alice)
    catalog_calls = len(catalog.calls)
    renamed = await send(api, "patch", path, {"name": "Presents"}, alice)

    assert replaced.status_code == 200
    assert replaced.json()["items"] == [{"product_id": 9, "note": "x"}]
    assert renamed.json()["name"] == "Presents"
    assert renamed.json()["items"] == [{"product_id": 9, "note": "x"}]
    assert len(catalog.calls) == catalog_calls  # no items, nothing to check

    reordered = await send(api, "patch", path, {"items": [{"product_id": 7}, {"product_id": 9, "note": "y"}]}, alice)

    assert reordered.status_code == 200
    assert reordered.json()["items"] == [{"product_id": 7, "note": ""}, {"product_id": 9, "note": "y"}]
    assert reordered.json()["name"] == "Presents"

    deleted = await api.delete(path, headers=alice)

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await api.get(path, headers=alice), 404, "not_found")
    assert await CollectionItem.objects.acount() == 0


# --- Ownership ------------------------------------------------------------------------------------------------------


async def test_a_client_sees_and_changes_only_its_own_collections(
    api: Any, alice: dict[str, str], bob: dict[str, str], catalog: respx.MockRouter
) -> None:
    created = (await post(api, WISHLIST, alice)).json()
    path = f"/api/collections/{created['id']}/"

    assert (await api.get("/api/collections/", headers=bob)).json()["count"] == 0
    assert_problem(await api.get(path, headers=bob), 404, "not_found")
    assert_problem(await send(api, "put", path, WISHLIST, bob), 404, "not_found")
    assert_problem(await send(api, "patch", path, {"name": "mine now"}, bob), 404, "not_found")
    assert_problem(await api.delete(path, headers=bob), 404, "not_found")

    mine = await api.get(path, headers=alice)
    assert mine.status_code == 200
    assert mine.json()["name"] == "Wishlist"


async def test_an_anonymous_caller_has_no_collections_and_cannot_write(
    api: Any, alice: dict[str, str], catalog: respx.MockRouter, settings: Any
) -> None:
    settings.API_KEYS_REQUIRED = False
    created = (await post(api, WISHLIST, alice)).json()

    assert (await api.get("/api/collections/")).json() == {"count": 0, "next": None, "previous": None, "results": []}
    assert_problem(await api.get(f"/api/collections/{created['id']}/"), 404, "not_found")
    assert_problem(await post(api, WISHLIST, {}), 401, "not_authenticated")
    assert_problem(await api.delete(f"/api/collections/{created['id']}/"), 401, "not_authenticated")
    assert await stored() == 1


# --- Validation, against the catalog too ----------------------------------------------------------------------------


async def test_unknown_product_ids_are_a_400_naming_each_and_nothing_is_written(
    api: Any, alice: dict[str, str], catalog: respx.MockRouter
) -> None:
    body = {"name": "Typos", "items": [{"product_id": 7}, {"product_id": 70}, {"product_id": 8}, {"product_id": 71}]}

    response = await post(api, body, alice)

    problem = assert_problem(response, 400, "invalid_request")
    assert [(e["field"], e["code"]) for e in problem["errors"]] == [
        ("items[1].product_id", "unknown_product"),
        ("items[3].product_id", "unknown_product"),
    ]
    assert problem["errors"][0]["message"] == "There is no product 70."
    assert await stored() == 0
    checked = sorted(call.request.url.path for call in catalog.calls)
    assert checked == ["/products/7", "/products/70", "/products/71", "/products/8"]  # each id once


async def test_catalog_down_is_503_and_nothing_is_written_or_changed(
    api: Any, alice: dict[str, str], catalog: respx.MockRouter
) -> None:
    created = (await post(api, WISHLIST, alice)).json()
    catalog.routes[0].side_effect = httpx.ConnectError("refused")

    create = await post(api, {"name": "New", "items": [{"product_id": 9}]}, alice)
    update = await send(api, "put", f"/api/collections/{created['id']}/", {"name": "X", "items": []}, alice)
    empty_update = await send(
        api, "put", f"/api/collections/{created['id']}/", {"name": "Y", "items": [{"product_id": 9}]}, alice
    )

    assert assert_problem(create, 503, "upstream_unreachable")["upstream"] == "catalog"
    assert update.status_code == 200  # no products: nothing to check, the catalog is not needed
    assert empty_update.status_code == 503  # unreachable, or by now its circuit is open
    assert empty_update.json()["code"] in ("upstream_unreachable", "circuit_open")
    assert await stored() == 1
    kept = (await api.get("/api/collections/", headers=alice)).json()["results"][0]
    assert kept["name"] == "X"  # the second update wrote nothing


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"items": []}, "name", "required"),
        ({"name": "", "items": []}, "name", "blank"),
        ({"name": "x" * 101, "items": []}, "name", "max_length"),
        ({"name": "A"}, "items", "required"),
        ({"name": "A", "items": [{"product_id": 7}] * 2}, "items", "duplicate"),
        ({"name": "A", "items": [{"product_id": 0}]}, "items[0].product_id", "min_value"),
        ({"name": "A", "items": [{"product_id": "seven"}]}, "items[0].product_id", "invalid"),
        ({"name": "A", "items": [{"product_id": i} for i in range(1, MAX_ITEMS + 2)]}, "items", "max_length"),
    ],
)
async def test_invalid_bodies_are_400_before_the_catalog_is_asked(
    api: Any, alice: dict[str, str], catalog: respx.MockRouter, body: Any, field: str, code: str
) -> None:
    response = await post(api, body, alice)

    problem = assert_problem(response, 400, "invalid_request")
    assert (field, code) in [(e["field"], e["code"]) for e in problem["errors"]]
    assert not catalog.calls
    assert await stored() == 0


# --- The composed read ----------------------------------------------------------------------------------------------


async def test_a_product_gone_from_the_catalog_and_a_failed_rating_are_reported_per_item(
    api: Any, alice: dict[str, str], catalog: respx.MockRouter
) -> None:
    created = (await post(api, {"name": "Old", "items": [{"product_id": 7}, {"product_id": 9}]}, alice)).json()
    products = catalog.routes[0].side_effect
    withdrawn = httpx.Response(404, json={"error": "not_found"})  # product 9, since the collection was made
    catalog.routes[0].side_effect = lambda request: withdrawn if request.url.path.endswith("/9") else products(request)
    fail(catalog.routes[2], httpx.Response(503))  # product 7's reviews

    response = await api.get(f"/api/collections/{created['id']}/", headers=alice)

    assert response.status_code == 200
    body = response.json()
    assert body["items"][1] == {
        "product_id": 9,
        "note": "",
        "product": None,
        "inventory": None,
        "average_rating": 4.5,
    }
    assert body["items"][0]["product"]["id"] == 7
    assert body["items"][0]["average_rating"] is None
    assert [(m["path"], m["code"]) for m in body["missing"]] == [
        ("items[0].average_rating", "upstream_status"),
        ("items[1].product", "upstream_not_found"),
    ]


async def test_an_empty_collection_reads_without_upstream_calls(
    api: Any, alice: dict[str, str], catalog: respx.MockRouter
) -> None:
    created = (await post(api, {"name": "Empty", "items": []}, alice)).json()

    response = await api.get(f"/api/collections/{created['id']}/", headers=alice)

    assert response.json()["items"] == []
    assert not catalog.calls


async def test_a_database_failure_is_a_503_never_a_500(
    api: Any, alice: dict[str, str], catalog: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = (await post(api, WISHLIST, alice)).json()

    async def locked(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("database is locked")

    monkeypatch.setattr(database, "arun", locked)
    monkeypatch.setattr(database, "afirst", locked)

    write = await send(api, "patch", f"/api/collections/{created['id']}/", {"name": "x"}, alice)
    read = await api.get(f"/api/collections/{created['id']}/", headers=alice)

    assert assert_problem(write, 503, "upstream_unavailable")["upstream"] == "database"
    assert assert_problem(read, 503, "upstream_unavailable")["upstream"] == "database"
    assert "locked" not in write.content.decode() + read.content.decode()


async def test_the_largest_valid_collection_fits_the_default_body_limit(catalog: respx.MockRouter) -> None:
    """Through the service's own ASGI handler, which enforces MAX_REQUEST_BODY_BYTES (Django's test client does not):
    50 items with 500-character notes, every character JSON-escaped (the worst case), is read and validated, not 413."""
    from config import asgi

    key = await new_key("big")
    items = [{"product_id": 7 + n, "note": "\u00e9" * 500} for n in range(MAX_ITEMS)]
    body = orjson.dumps({"name": "n" * 100, "items": items}).decode().encode("ascii", "backslashreplace")
    body = body.replace(b"\\x", b"\\u00")  # JSON's escape for each non-ASCII character: 6 bytes
    assert len(body) > 150_000
    transport = httpx.ASGITransport(app=asgi.application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.post(
            "/api/collections/", content=body, headers={**key, "Content-Type": "application/json"}
        )

    # Read and validated: only ids 7-9 exist, so the others are named; the body was not refused for its size.
    body_json = assert_problem(response, 400, "invalid_request")
    assert {error["code"] for error in body_json["errors"]} == {"unknown_product"}
    assert len(body_json["errors"]) == MAX_ITEMS - len(KNOWN)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # nesting deeper than any JSON parser recurses
        b'{"name": "x", "items": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"name": "x", "items": [{"product_id": 1e999}]}',  # infinity
        b'{"name": "\\ud800", "items": []}',  # a lone surrogate
        b"\xff\xfe{}",  # not UTF-8
        b'{"name": "x", "items": [{"product_id": 7}]}' + b" " * 1000 + b"x",  # trailing garbage
        b"[]",
        b'"a string"',
        b"null",
        b'{"name": null, "items": null}',
        b'{"name": "x", "items": [null, 7, "7", []]}',
        b'{"name": "x", "items": [{"product_id": true}]}',
        b'{"name": "x", "items": [{"product_id": 7, "note": {"a": 1}}]}',
    ],
    ids=[
        *("deep-array", "deep-items", "infinity", "lone-surrogate", "not-utf8", "trailing-garbage"),
        *("array", "string", "null", "null-fields", "odd-items", "boolean-id", "object-note"),
    ],
)
async def test_a_hostile_body_is_a_400_never_a_500(catalog: respx.MockRouter, body: bytes) -> None:
    from config import asgi

    key = await new_key("hostile")
    transport = httpx.ASGITransport(app=asgi.application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.post(
            "/api/collections/", content=body, headers={**key, "Content-Type": "application/json"}
        )

    assert response.status_code == 400, response.text
    assert response.json()["code"] in {"invalid_request", "bad_request"}
    assert await stored() == 0


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
@pytest.mark.parametrize("pk", ["99999999999999999999999", "9223372036854775808", "0", "-1", "1e3", "%F0%9F%98%80"])
async def test_an_id_no_collection_can_have_is_a_404(catalog: respx.MockRouter, method: str, pk: str) -> None:
    from config import asgi

    key = await new_key("ids")
    transport = httpx.ASGITransport(app=asgi.application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        body = orjson.dumps(WISHLIST) if method in {"put", "patch"} else None
        response = await client.request(
            method.upper(), f"/api/collections/{pk}/", content=body, headers={**key, "Content-Type": "application/json"}
        )

    assert_problem(response, 404, "not_found")
