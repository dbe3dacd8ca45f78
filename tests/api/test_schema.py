"""The OpenAPI schema: the committed file matches the code, is valid, and real responses match it."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml
from django.core.management import call_command
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec

from api.problems import PROBLEM_CODES

PROBES = ("/healthz", "/readyz")
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "openapi" / "schema.yaml"


@cache
def committed() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_FILE.read_text())


def test_committed_schema_is_what_the_code_generates() -> None:
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)

    assert out.getvalue() == SCHEMA_FILE.read_text(), "openapi/schema.yaml is stale: run `make schema` and commit it"


def test_committed_schema_is_valid_openapi() -> None:
    validate_spec(committed())


def test_every_operation_has_an_id_and_documents_its_errors_as_problems() -> None:
    for path, operations in committed()["paths"].items():
        for method, operation in operations.items():
            assert operation["operationId"], (method, path)
            assert operation["description"], (method, path)
            if path in PROBES:
                assert "security" not in operation, (method, path)  # probes take no key
                continue  # a probe's 503 is its state report, not a failed request
            # Every API operation takes a key in either header, and documents the 401 and 403 that come with it.
            assert operation["security"] == [{"BearerAuth": []}, {"ApiKeyAuth": []}], (method, path)
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"], (method, path)
            assert "403" in operation["responses"], (method, path)
            errors = {code: r for code, r in operation["responses"].items() if code.startswith(("4", "5"))}
            assert "500" in errors, (method, path)
            for code, response in errors.items():
                assert list(response["content"]) == ["application/problem+json"], (method, path, code)
                assert response["content"]["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }


def assert_matches_schema(response: Any, path: str, method: str = "get") -> None:
    """The body validates against what the committed schema documents for this path, status and media type."""
    operation = committed()["paths"][path][method]
    status = str(response.status_code)
    assert status in operation["responses"], f"{status} is not documented for {method.upper()} {path}"
    media_type = response.headers["Content-Type"].split(";")[0]
    schema = operation["responses"][status]["content"][media_type]["schema"]
    OAS31Validator({**schema, "components": committed()["components"]}).validate(response.json())


CATALOG = "http://catalog.upstream.test"
PRODUCT = {
    "id": 7,
    "sku": "SKU-00007",
    "name": "Kettle",
    "description": "",
    "category": "kitchen",
    "price": "9.99",
    "currency": "USD",
}


@pytest.fixture
def upstreams(upstream_mock: respx.MockRouter) -> respx.MockRouter:
    upstream_mock.get(f"{CATALOG}/products/7").respond(json=PRODUCT)
    upstream_mock.get(f"{CATALOG}/products/8").respond(json={"id": "x"})
    upstream_mock.get(f"{CATALOG}/products/9").mock(side_effect=httpx.ConnectError("refused"))
    upstream_mock.get(f"{CATALOG}/products/10").mock(side_effect=httpx.ReadTimeout("slow"))
    upstream_mock.get(f"{CATALOG}/products/404").respond(404)
    upstream_mock.get(f"{CATALOG}/products").respond(json={"total": 1, "page": 1, "page_size": 20, "items": [PRODUCT]})
    upstream_mock.get("http://inventory.upstream.test/stock/SKU-00007").respond(
        json={"sku": "SKU-00007", "available": 0, "warehouse": "W", "updated_at": "2026-01-01T00:00:00Z"}
    )
    upstream_mock.get(url__regex=r"http://reviews\.upstream\.test/.*").respond(500)
    upstream_mock.get("http://fx.upstream.test/rates/USD").respond(
        json={"base": "USD", "as_of": "2026-01-01", "rates": {"EUR": "0.9"}}
    )
    slow = {"source": "s", "message": "m", "latency_ms": 1.5, "items": [{"id": 1, "value": "v"}]}
    upstream_mock.get(url__regex=r"http://slow\.upstream\.test/slow_data.*").respond(json=slow)
    return upstream_mock


@pytest.mark.parametrize(
    ("url", "path", "status"),
    [
        ("/api/products/7/?currency=EUR", "/api/products/{id}/", 200),
        ("/api/products/7/?currency=e", "/api/products/{id}/", 400),
        ("/api/products/404/", "/api/products/{id}/", 404),
        ("/api/products/8/", "/api/products/{id}/", 502),
        ("/api/products/9/", "/api/products/{id}/", 503),
        ("/api/products/10/", "/api/products/{id}/", 504),
        ("/api/products/", "/api/products/", 200),
        ("/api/products/?page=0", "/api/products/", 400),
        ("/api/external-data/", "/api/external-data/", 200),
        ("/api/multiple-external-data/", "/api/multiple-external-data/", 200),
        ("/api/upstreams/", "/api/upstreams/", 200),
        ("/healthz", "/healthz", 200),
        ("/readyz", "/readyz", 200),
    ],
)
async def test_real_responses_match_the_committed_schema(
    api: Any, upstreams: respx.MockRouter, url: str, path: str, status: int
) -> None:
    response = await api.get(url)

    assert response.status_code == status
    assert_matches_schema(response, path)


async def test_schema_swagger_ui_and_redoc_are_served_with_local_assets(api: Any) -> None:
    schema = await api.get("/api/schema/")
    assert schema.status_code == 200
    assert yaml.safe_load(schema.content)["info"]["title"] == "Tributary"

    for page in ("/api/docs/", "/api/redoc/"):
        html = (await api.get(page)).content.decode()
        assert "/static/drf_spectacular_sidecar/" in html
        assert "cdn" not in html.lower()

    asset = await api.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    asset.close()
    assert asset.status_code == 200


def test_request_timeout_is_declared_as_the_range_the_service_takes() -> None:
    for path, operations in committed()["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "Request-Timeout":
                    assert parameter["schema"] == {"type": "number", "exclusiveMinimum": 0, "maximum": 3600}, path


def test_every_response_declares_x_request_id_and_every_error_status_lists_its_codes() -> None:
    for path, operations in committed()["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "406" in responses, (method, path)  # any operation answers 406 to an Accept without JSON
            for status, response in responses.items():
                assert "X-Request-ID" in response.get("headers", {}), (method, path, status)
                if path not in PROBES and status.startswith(("4", "5")):
                    codes = {code for code, code_status in PROBLEM_CODES.items() if str(code_status) == status}
                    assert codes, (method, path, status)
                    for code in codes:
                        assert f"`{code}`" in response["description"], (method, path, status, code)
                if status == "503" and path not in PROBES:
                    assert "Retry-After" in response["headers"], (method, path)


def test_a_keyed_operation_declared_without_the_usual_problems_still_gets_its_401_and_403() -> None:
    """A view added without api/schema.py `problems()` (no 406 to copy) must not make schema generation fail."""
    from api.clients.schema import document_key_errors

    bare = {"security": [{"ApiKey": []}], "responses": {"200": {"description": "OK"}}}
    result = document_key_errors({"paths": {"/api/custom/": {"get": bare}}})

    responses = result["paths"]["/api/custom/"]["get"]["responses"]
    assert list(responses) == ["200", "401", "403"]
    for status in ("401", "403"):
        assert responses[status]["content"]["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }
    assert "WWW-Authenticate" in responses["401"]["headers"]
