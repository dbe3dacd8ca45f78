"""The README's recipes run as written: the weather aggregate (api/examples/weather.py, copied in the README) is
declared, served through the API against the demo upstreams and a weather upstream, documented in the schema, and
checked by `manage.py check`; and a declaration that cannot be published is refused when it is made."""

from __future__ import annotations

import asyncio
import importlib
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.urls import include, path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from api import docs
from api import serializers as s
from api.aggregation import Aggregate, Fetch, published, unpublish
from api.apps import check_aggregate_upstreams
from api.urls import api_urlpatterns
from config import asgi
from tests.api.helpers import assert_problem
from tests.conftest import install_registry
from tests.servers import serve_in_thread
from upstreams import aiohttp_transport, declared
from upstreams.demo import data

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "api" / "examples" / "weather.py"
URLCONF = "tests.api._recipe_urls"


def readme_section(title: str) -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"## {title}\n")
    return readme[start : readme.index("\n## ", start + 1)]


def test_the_readme_shows_the_recipe_file_verbatim() -> None:
    assert f"```python\n{RECIPE.read_text()}```" in readme_section("How to add an aggregate")


def test_the_readme_upstream_declaration_is_valid() -> None:
    (line,) = re.findall(r'^    (Upstream\("weather".*\)),$', readme_section("How to add an upstream"), re.M)

    upstream = eval(line, {"Upstream": declared.Upstream})  # noqa: S307 - our own README

    assert upstream == declared.Upstream("weather", demo=False, defaults={"CACHE_TTL": "300"})


async def weather_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The weather upstream: a forecast per warehouse."""
    if scope["type"] != "http":
        return
    warehouse = scope["path"].removeprefix("/weather/forecast/")
    body = b'{"warehouse": "%s", "temperature_c": 11.5, "conditions": "drizzle"}' % warehouse.encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def weather_url() -> Iterator[str]:
    with serve_in_thread(weather_app) as url:
        yield url


@pytest.fixture
def recipe(settings: Any) -> Iterator[types.ModuleType]:
    """The recipe module, imported fresh (so it publishes its aggregate), and the service's URLs with it."""
    sys.modules.pop("api.examples.weather", None)
    module = importlib.import_module("api.examples.weather")
    urls = types.ModuleType(URLCONF)
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("api/", include(api_urlpatterns())),
        path("api/schema/", docs.SchemaView.as_view(), name="schema"),
    ]
    sys.modules[URLCONF] = urls
    settings.ROOT_URLCONF = URLCONF
    try:
        yield module
    finally:
        unpublish(module.ProductWeather)
        sys.modules.pop(URLCONF, None)
        sys.modules.pop("api.examples.weather", None)


@pytest.fixture
def weather(recipe: types.ModuleType, demo: Any, weather_url: str, settings: Any) -> None:
    """Every upstream on the demo, and the weather upstream configured as the README says."""
    demo()
    settings.UPSTREAMS = {**settings.UPSTREAMS, "weather": {"URL": f"{weather_url}/weather", "TIMEOUT": "2"}}
    install_registry(settings.UPSTREAMS, aiohttp_transport)


async def get(url: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=asgi.application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.get(url)


@pytest.mark.usefixtures("weather")
async def test_the_recipe_aggregate_is_served() -> None:
    response = await get("/api/products/7/weather/")

    assert response.status_code == 200, response.content
    warehouse = data.stock(data.product(7)["sku"])["warehouse"]
    assert response.json() == {"warehouse": warehouse, "temperature_c": 11.5, "conditions": "drizzle"}
    assert response.headers["Server-Timing"].count(";dur=") == 3  # product, stock, forecast


@pytest.mark.usefixtures("weather")
async def test_the_recipe_aggregate_answers_problems_like_the_others() -> None:
    assert_problem(await get("/api/products/999999/weather/"), 404, "not_found")
    assert_problem(await get("/api/products/seven/weather/"), 404, "not_found")  # the path parameter is an int


@pytest.mark.usefixtures("weather")
async def test_the_recipe_aggregate_is_in_the_schema_as_declared() -> None:
    schema = (await get("/api/schema/?format=json")).json()

    operation = schema["paths"]["/api/products/{id}/weather/"]["get"]
    assert operation["operationId"] == "get_product_weather"
    assert operation["summary"] == "The weather where a product ships from"
    assert operation["description"].startswith("The forecast at the warehouse that stocks the product")
    assert operation["tags"] == ["products"]
    assert {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "path"} == {"id": {"type": "integer"}}
    # 304: ETag; 401/403: API keys; 429: rate limits (api/clients/).
    assert sorted(operation["responses"]) == [
        *("200", "304", "400", "401", "403", "404", "406", "429", "500", "502", "503", "504")
    ]
    assert "OnLoop" not in operation["description"]


@pytest.mark.usefixtures("weather")
async def test_a_client_generated_from_the_schema_calls_the_recipe_aggregate(tmp_path: Path) -> None:
    """openapi-python-client, as a consumer would run it on the schema `make schema` writes with the recipe added."""
    schema = SchemaGenerator(patterns=[path("api/", include(api_urlpatterns()))]).get_schema(request=None, public=True)
    (tmp_path / "schema.json").write_bytes(OpenApiJsonRenderer().render(schema))
    (tmp_path / "config.yaml").write_text("post_hooks: []\n")
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = await asyncio.to_thread(
        subprocess.run,
        [
            *(str(generator), "generate", "--path", "schema.json", "--output-path", "weather_client"),
            *("--meta", "none", "--config", "config.yaml", "--fail-on-warning"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        operation = importlib.import_module("weather_client.api.products.get_product_weather")
        models = importlib.import_module("weather_client.models")
        client = importlib.import_module("weather_client.client").Client(base_url="http://127.0.0.1")
        transport = httpx.ASGITransport(app=asgi.application)
        client.set_async_httpx_client(httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1"))

        forecast = await operation.asyncio(7, client=client)
        problem = await operation.asyncio(999999, client=client)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == "weather_client"]:
            del sys.modules[name]

    assert isinstance(forecast, models.Forecast)
    assert (forecast.temperature_c, forecast.conditions) == (11.5, "drizzle")
    assert isinstance(problem, models.Problem)
    assert problem.code is models.ProblemCode.NOT_FOUND


def test_the_configuration_check_covers_the_recipe_without_a_list_to_edit(recipe: types.ModuleType) -> None:
    errors = check_aggregate_upstreams()  # test settings: the declared upstreams, not weather

    assert [(e.id, e.msg) for e in errors] == [
        ("api.E001", "aggregate ProductWeather uses upstream 'weather', which is not configured")
    ]


def test_published_aggregates_are_exactly_the_declared_ones(recipe: types.ModuleType) -> None:
    assert [a.operation_id for a in published()][-1] == "get_product_weather"

    unpublish(recipe.ProductWeather)

    assert "get_product_weather" not in [a.operation_id for a in published()]


# --- Declarations that cannot be published are refused where they are written ------------------------------------


SLOW = Fetch(upstream="slow", path="slow_data", serializer=s.SlowData)


def declare(name: str, **attrs: Any) -> type[Aggregate]:
    attrs.setdefault("data", SLOW)
    try:
        return type(name, (Aggregate,), attrs)
    finally:
        for aggregate in published():
            if aggregate.__name__ == name:
                unpublish(aggregate)


@pytest.mark.parametrize(
    ("attrs", "error"),
    [
        ({"route": "things", "tag": "t"}, "needs a docstring .*a `response` serializer class"),
        ({"route": "things", "__doc__": "Things.", "response": s.SlowData}, "needs a `tag`"),
        ({"route": "things/{id:float}", "__doc__": "Things.", "response": s.SlowData, "tag": "t"}, "must be 'prefix'"),
        (
            {"route": "things", "__doc__": "X.", "response": s.SlowData, "tag": "t", "operation_id": "list_products"},
            "same",
        ),
        ({"route": "products/{id:int}", "__doc__": "X.", "response": s.SlowData, "tag": "t"}, "same route"),
    ],
)
def test_a_declaration_that_cannot_be_published_is_refused(attrs: dict[str, Any], error: str) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        declare("Things", **attrs)


def test_an_aggregate_without_a_route_is_not_published() -> None:
    declare("Helper", response=s.SlowData)

    assert "Helper" not in [a.__name__ for a in published()]


def test_an_operation_is_described_by_its_docstring_only() -> None:
    aggregate = type(
        "OnlySummary",
        (Aggregate,),
        {"__doc__": "Only a summary.", "route": "only", "response": s.SlowData, "tag": "t", "data": SLOW},
    )
    try:
        generator = SchemaGenerator(patterns=[path("api/", include(api_urlpatterns()))])
        operation = generator.get_schema(request=None, public=True)["paths"]["/api/only/"]["get"]
    finally:
        unpublish(aggregate)

    assert operation["summary"] == "Only a summary"
    assert "description" not in operation  # not the generic viewset's docstring
    assert sorted(operation["responses"]) == [  # no fetch 404s
        *("200", "304", "400", "401", "403", "406", "429", "500", "502", "503", "504")
    ]
