"""Tests of the demo upstreams through their public surface: HTTP requests to the ASGI app.

Most go through httpx's in-process ASGI transport with zero latency; the one about time (a client giving up
on a ``timeout`` upstream) and the wire (a ``reset`` upstream dropping the connection) uses a real uvicorn
server on a loopback socket, because only a real server can drop, or notice, a dropped connection.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from upstreams import declared
from upstreams.demo import FAULT_KINDS, DemoApp, DemoOptions, demo_payload, parse_faults

PRODUCT_KEYS = {"id", "sku", "name", "description", "category", "price", "currency", "tags"}


def make_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo.test")


@pytest.fixture
def app() -> DemoApp:
    return DemoApp(DemoOptions(latency_ms=0))


@pytest.fixture
async def client(app: DemoApp) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as client:
        yield client


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


# --- catalog ------------------------------------------------------------------------------------------------


async def test_catalog_first_page_defaults_to_twenty_of_120_products(client: httpx.AsyncClient) -> None:
    body = await get_json(client, "/catalog/products")

    assert (body["total"], body["page"], body["page_size"]) == (120, 1, 20)
    assert [p["id"] for p in body["items"]] == list(range(1, 21))
    assert all(set(p) == PRODUCT_KEYS for p in body["items"])


async def test_catalog_pages_cover_every_product_once(client: httpx.AsyncClient) -> None:
    ids = [
        p["id"]
        for page in (1, 2, 3)
        for p in (await get_json(client, "/catalog/products", page=page, page_size=50))["items"]
    ]

    assert ids == list(range(1, 121))


async def test_catalog_page_past_the_end_is_empty(client: httpx.AsyncClient) -> None:
    body = await get_json(client, "/catalog/products", page=7, page_size=20)

    assert body == {"total": 120, "page": 7, "page_size": 20, "items": []}


@pytest.mark.parametrize(
    "query",
    ["page=0", "page=-1", "page=abc", "page=+1", "page=", "page_size=0", "page_size=101", "page_size=1.5"],
)
async def test_catalog_bad_paging_is_400(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/catalog/products?{query}")

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_request"
    assert query.split("=")[0] in body["detail"]


async def test_catalog_product_has_decimal_string_price_and_known_currency(client: httpx.AsyncClient) -> None:
    product = await get_json(client, "/catalog/products/7")

    assert set(product) == PRODUCT_KEYS
    assert (product["id"], product["sku"]) == (7, "SKU-00007")
    assert re.fullmatch(r"\d+\.\d\d", product["price"])
    assert product["currency"] in {"USD", "EUR", "GBP"}
    assert product["tags"]
    assert all(isinstance(tag, str) for tag in product["tags"])


async def test_catalog_is_deterministic_and_mostly_usd(client: httpx.AsyncClient) -> None:
    first = [await get_json(client, f"/catalog/products/{i}") for i in range(1, 121)]
    again = [await get_json(client, f"/catalog/products/{i}") for i in range(1, 121)]

    assert first == again
    assert len({p["name"] for p in first}) == 120
    currencies = [p["currency"] for p in first]
    assert currencies.count("USD") > 60
    assert {"EUR", "GBP"} <= set(currencies)


@pytest.mark.parametrize("product_id", ["0", "121", "abc", "07", "-1", "1.0"])
async def test_catalog_unknown_or_non_integer_product_is_404(client: httpx.AsyncClient, product_id: str) -> None:
    response = await client.get(f"/catalog/products/{product_id}")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# --- inventory, reviews, fx, slow ---------------------------------------------------------------------------


async def test_inventory_stock_for_every_product_sku(client: httpx.AsyncClient) -> None:
    stocks = [await get_json(client, f"/inventory/stock/SKU-{i:05d}") for i in range(1, 121)]

    assert stocks[6] == {
        "sku": "SKU-00007",
        "available": stocks[6]["available"],
        "warehouse": stocks[6]["warehouse"],
        "updated_at": stocks[6]["updated_at"],
    }
    assert all(isinstance(s["available"], int) and s["available"] >= 0 for s in stocks)
    assert any(s["available"] == 0 for s in stocks)
    assert all(re.fullmatch(r"2026-01-01T\d\d:\d\d:00Z", s["updated_at"]) for s in stocks)


@pytest.mark.parametrize("sku", ["SKU-00000", "SKU-00121", "SKU-7", "sku-00007", "nope"])
async def test_inventory_unknown_sku_is_404(client: httpx.AsyncClient, sku: str) -> None:
    response = await client.get(f"/inventory/stock/{sku}")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_inventory_batch_answers_known_skus_once_each_and_leaves_unknown_ones_out(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/inventory/stock", params={"skus": "SKU-00003,SKU-99999,SKU-00001,SKU-00003"})

    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["sku"] for item in items] == ["SKU-00003", "SKU-00001"]
    single = (await client.get("/inventory/stock/SKU-00003")).json()
    assert items[0] == single


@pytest.mark.parametrize("query", ["", "?skus=", "?skus=" + ",".join(f"SKU-{i:05d}" for i in range(1, 102))])
async def test_inventory_batch_without_skus_or_with_too_many_is_400(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/inventory/stock{query}")

    assert response.status_code == 400


def test_demo_payload_serves_the_batch_endpoint() -> None:
    assert demo_payload("inventory", "stock", {"skus": "SKU-00002"})["items"][0]["sku"] == "SKU-00002"


async def test_reviews_summary_ratings_and_products_without_reviews(client: httpx.AsyncClient) -> None:
    summaries = [await get_json(client, f"/reviews/products/{i}/summary") for i in range(1, 121)]

    assert summaries[6]["product_id"] == 7
    rated = [s for s in summaries if s["count"] > 0]
    unrated = [s for s in summaries if s["count"] == 0]
    assert all(
        1.0 <= s["average_rating"] <= 5.0 and round(s["average_rating"], 1) == s["average_rating"] for s in rated
    )
    assert unrated
    assert all(s["average_rating"] is None for s in unrated)


async def test_reviews_unknown_product_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/reviews/products/999/summary")

    assert response.status_code == 404


async def test_fx_usd_rates(client: httpx.AsyncClient) -> None:
    body = await get_json(client, "/fx/rates/USD")

    assert body == {
        "base": "USD",
        "as_of": "2026-01-01",
        "rates": {"USD": "1", "EUR": "0.92", "GBP": "0.79", "JPY": "151.20", "CHF": "0.88"},
    }


async def test_fx_cross_rates_are_consistent(client: httpx.AsyncClient) -> None:
    currencies = ["USD", "EUR", "GBP", "JPY", "CHF"]
    table = {base: (await get_json(client, f"/fx/rates/{base}"))["rates"] for base in currencies}

    for a in currencies:
        assert table[a][a] == "1"
        for b in currencies:
            for c in currencies:
                direct, via = Decimal(table[a][c]), Decimal(table[a][b]) * Decimal(table[b][c])
                assert abs(direct - via) / direct < Decimal("0.0001")


@pytest.mark.parametrize("base", ["usd", "XXX", "US", "USDX"])
async def test_fx_unknown_or_lowercase_base_is_404(client: httpx.AsyncClient, base: str) -> None:
    response = await client.get(f"/fx/rates/{base}")

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("source", "factor"),
    [("slow_data", 1.0), ("slow_data_1", 1.0), ("slow_data_2", 1.5), ("slow_data_3", 2.0)],
)
async def test_slow_endpoints_report_their_latency(source: str, factor: float) -> None:
    async with make_client(DemoApp(DemoOptions(latency_ms=4))) as client:
        started = time.perf_counter()
        body = await get_json(client, f"/slow/{source}")
        elapsed_ms = (time.perf_counter() - started) * 1000

    assert body["source"] == source
    assert body["latency_ms"] == 4 * factor
    assert elapsed_ms >= 4 * factor
    assert isinstance(body["message"], str)
    assert [item["id"] for item in body["items"]] == [1, 2, 3, 4, 5]
    assert all(isinstance(item["value"], str) for item in body["items"])


# --- routing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/catalog", "/catalog/products/", "/slow/slow_data_4", "/demo/fx/rates/USD"])
async def test_unknown_path_is_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "not_found"}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
async def test_non_get_is_405(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/catalog/products/1")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


# --- faults -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_status_fault_answers_that_status_for_every_endpoint_of_the_service(status: int) -> None:
    async with make_client(DemoApp(DemoOptions(latency_ms=0, faults={"catalog": str(status)}))) as client:
        responses = [await client.get(path) for path in ("/catalog/products", "/catalog/products/1")]
        unaffected = await client.get("/inventory/stock/SKU-00001")

    assert all(r.status_code == status for r in responses)
    assert all(r.json() == {"error": "injected", "status": status} for r in responses)
    # Rate limiting and maintenance say when to come back, as real services do; a plain 500 does not.
    assert all(r.headers.get("retry-after") == ("1" if status in (429, 503) else None) for r in responses)
    assert unaffected.status_code == 200


async def test_invalid_json_fault_sends_truncated_json() -> None:
    async with make_client(DemoApp(DemoOptions(latency_ms=0, faults={"fx": "invalid_json"}))) as client:
        response = await client.get("/fx/rates/USD")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


async def test_wrong_shape_fault_sends_valid_json_of_the_wrong_types() -> None:
    async with make_client(DemoApp(DemoOptions(latency_ms=0, faults={"catalog": "wrong_shape"}))) as client:
        response = await client.get("/catalog/products/7")

    body = response.json()
    assert response.status_code == 200
    assert not isinstance(body["id"], int)
    assert body["price"] is None
    assert not isinstance(body["items"], list)


async def test_html_fault_sends_html() -> None:
    async with make_client(DemoApp(DemoOptions(latency_ms=0, faults={"reviews": "html"}))) as client:
        response = await client.get("/reviews/products/1/summary")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == "<html>oops</html>"


async def test_huge_fault_streams_twelve_mib_of_valid_json() -> None:
    app = DemoApp(DemoOptions(latency_ms=0, faults={"inventory": "huge"}))
    body_messages = 0

    # httpx's ASGI transport joins the body, so count the chunks on their way out of the app.
    async def counting_app(scope: Any, receive: Any, send: Any) -> None:
        async def counting_send(message: Any) -> None:
            nonlocal body_messages
            body_messages += message["type"] == "http.response.body"
            await send(message)

        await app(scope, receive, counting_send)

    async with make_client(counting_app) as client:
        response = await client.get("/inventory/stock/SKU-00001")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert 12 * 2**20 <= len(response.content) < 13 * 2**20
    assert isinstance(orjson.loads(response.content), list)
    assert body_messages > 100


async def test_slow_fault_multiplies_latency_by_ten() -> None:
    async with make_client(DemoApp(DemoOptions(latency_ms=2, faults={"slow": "slow"}))) as client:
        started = time.perf_counter()
        body = await get_json(client, "/slow/slow_data_2")
        elapsed_ms = (time.perf_counter() - started) * 1000

    assert body["latency_ms"] == 30.0
    assert elapsed_ms >= 30.0


# --- options and fault specs --------------------------------------------------------------------------------


def test_parse_faults_reads_service_kind_pairs() -> None:
    assert parse_faults("reviews=timeout, inventory=500 ,fx=huge") == {
        "reviews": "timeout",
        "inventory": "500",
        "fx": "huge",
    }
    assert parse_faults("") == {}
    assert parse_faults("  ") == {}


def test_parse_faults_accepts_every_named_kind() -> None:
    for kind in FAULT_KINDS:
        assert parse_faults(f"slow={kind}") == {"slow": kind}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("payments=500", "unknown demo service 'payments'"),
        ("reviews=explode", "unknown fault kind 'explode'"),
        ("reviews=200", "unknown fault kind '200'"),
        ("reviews=5000", "unknown fault kind '5000'"),
        ("reviews", "expected service=kind"),
        ("reviews=", "expected service=kind"),
        ("=500", "expected service=kind"),
        ("reviews=500,,fx=503", "expected service=kind"),
        ("fx=500,fx=503", "given twice"),
    ],
)
def test_parse_faults_rejects_bad_specs_clearly(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_faults(spec)


def test_options_validate_and_freeze_faults() -> None:
    faults = {"fx": "503"}
    options = DemoOptions(faults=faults)
    faults["fx"] = "html"

    assert options.faults == {"fx": "503"}
    assert DemoOptions().faults == {}
    with pytest.raises(TypeError):
        options.faults["fx"] = "html"  # type: ignore[index]
    with pytest.raises(ValueError, match="unknown demo service"):
        DemoOptions(faults={"nope": "500"})
    with pytest.raises(ValueError, match="latency_ms"):
        DemoOptions(latency_ms=-1)


# --- stats and lifespan -------------------------------------------------------------------------------------


async def test_stats_count_requests_concurrency_and_request_ids() -> None:
    app = DemoApp(DemoOptions(latency_ms=40))
    async with make_client(app) as client:
        await asyncio.gather(
            *(client.get("/catalog/products/1", headers={"X-Request-ID": f"req-{i}"}) for i in range(5))
        )
        await client.get("/nowhere")

    assert app.stats.requests == 6
    assert app.stats.in_flight == 0
    assert app.stats.max_in_flight == 5
    assert sorted(app.stats.request_ids) == [("/catalog/products/1", f"req-{i}") for i in range(5)] + [
        ("/nowhere", None)
    ]

    app.stats.reset()

    assert (app.stats.requests, app.stats.max_in_flight, app.stats.disconnects) == (0, 0, 0)
    assert not app.stats.request_ids


async def test_lifespan_startup_and_shutdown_complete(app: DemoApp) -> None:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: list[dict[str, Any]] = []
    for message_type in ("lifespan.startup", "lifespan.shutdown"):
        inbox.put_nowait({"type": message_type})

    async def send(message: Any) -> None:
        outbox.append(message)

    await asyncio.wait_for(app({"type": "lifespan"}, inbox.get, send), timeout=1)

    assert outbox == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


# --- over a real socket -------------------------------------------------------------------------------------


@pytest.fixture
def served_app() -> Iterator[tuple[DemoApp, str]]:
    """The demo app with a ``timeout`` reviews and a ``reset`` inventory, on a uvicorn thread on loopback."""
    app = DemoApp(DemoOptions(latency_ms=0, faults={"reviews": "timeout", "inventory": "reset"}))
    # log_config=None: uvicorn must not reconfigure logging in the test process (pytest captures its records).
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not server.started:
            assert thread.is_alive(), "uvicorn failed to start"
            assert time.monotonic() < deadline, "uvicorn did not start in time"
            time.sleep(0.01)
        host, port = sock.getsockname()
        yield app, f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


async def test_real_socket_timeout_waits_for_client_and_reset_drops_connection(
    served_app: tuple[DemoApp, str],
) -> None:
    app, base_url = served_app
    async with httpx.AsyncClient(base_url=base_url, timeout=0.3) as client:
        assert (await client.get("/catalog/products/1")).status_code == 200

        started = time.perf_counter()
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/reviews/products/1/summary")
        assert time.perf_counter() - started >= 0.3

        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/inventory/stock/SKU-00001")

    deadline = time.monotonic() + 2
    while app.stats.disconnects < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert app.stats.disconnects == 1
    assert app.stats.in_flight == 0


# --- The declared upstreams (upstreams/declared.py) -------------------------------------------------------------------


async def test_the_demo_serves_every_upstream_declared_with_a_demo(client: httpx.AsyncClient) -> None:
    paths = {
        "slow": "slow_data",
        "catalog": "products/1",
        "inventory": "stock/SKU-00001",
        "reviews": "products/1/summary",
    }
    paths["fx"] = "rates/USD"

    assert set(declared.demo_names()) == set(paths)
    for name, path in paths.items():
        assert (await client.get(f"/{name}/{path}")).status_code == 200, name
        assert parse_faults(f"{name}=503") == {name: "503"}


def test_a_fault_for_an_upstream_not_declared_with_a_demo_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown demo service 'weather'"):
        parse_faults("weather=503")


async def test_demo_payload_is_what_the_service_answers(client: httpx.AsyncClient) -> None:
    assert demo_payload("catalog", "products/7") == (await client.get("/catalog/products/7")).json()
    assert demo_payload("catalog", "products", {"page": "2"}) == (await client.get("/catalog/products?page=2")).json()
    with pytest.raises(LookupError):
        demo_payload("catalog", "products/999999")
    with pytest.raises(LookupError):
        demo_payload("weather", "forecast/AMS-1")
