"""Errors outside the upstream tree: unknown URLs, wrong methods, and bugs. Always a problem document, never HTML,
never exception text."""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from django.test import AsyncClient
from django.urls import path
from rest_framework import exceptions

from api import aggregates, problems
from config import urls as config_urls
from tests.api.helpers import assert_problem
from upstreams import UpstreamError


@pytest.mark.parametrize(
    "path", ["/nope", "/api/", "/api/products", "/api/products/7/extra/", "/demo/catalog/products"]
)
async def test_unknown_url_is_a_404_problem(api: Any, path: str) -> None:
    assert_problem(await api.get(path), 404, "not_found")


async def test_unknown_url_is_a_problem_even_with_debug_on(api: Any, settings: Any) -> None:
    settings.DEBUG = True
    assert_problem(await api.get("/nope"), 404, "not_found")


async def test_wrong_method_is_405(api: Any) -> None:
    response = await api.post("/api/products/", data={}, content_type="application/json")

    assert_problem(response, 405, "method_not_allowed")


async def test_unacceptable_media_type_is_406(api: Any) -> None:
    response = await api.get("/api/upstreams/", headers={"Accept": "text/html"})

    assert_problem(response, 406, "not_acceptable")


async def test_unexpected_error_is_500_without_internals_and_is_logged(
    api: Any, upstream_mock: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    upstream_mock.get("http://slow.upstream.test/slow_data").respond(
        json={"source": "s", "message": "m", "latency_ms": 1, "items": []}
    )

    def explode(self: Any, parts: Any) -> Any:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(aggregates.ExternalData, "shape", explode)

    with caplog.at_level(logging.ERROR, logger="tributary.problems"):
        response = await api.get("/api/external-data/", headers={"X-Request-ID": "boom-1"})

    assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.content.decode()
    record = next(r for r in caplog.records if r.name == "tributary.problems")
    assert record.exc_info is not None
    assert record.request_id == "boom-1"  # type: ignore[attr-defined]


async def test_disallowed_host_is_a_400_problem(api: Any) -> None:
    response = await api.get("/healthz", headers={"Host": "evil.example"})

    assert_problem(response, 400, "bad_request")


# --- Every method on every path (finding: OPTIONS /api/docs/ was a 500, and an HTML traceback with DEBUG on) -------

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
STATIC = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
# Path -> (status and media type of a GET, methods the resource takes).
ROUTES: dict[str, tuple[int, str]] = {
    "/api/docs/": (200, "text/html"),
    "/api/redoc/": (200, "text/html"),
    "/api/schema/": (200, "application/vnd.oai.openapi"),
    "/healthz": (200, "application/json"),
    "/readyz": (200, "application/json"),
    "/api/upstreams/": (200, "application/json"),
    "/api/products/": (200, "application/json"),
    "/api/products/7/": (200, "application/json"),
    "/api/external-data/": (200, "application/json"),
    "/api/multiple-external-data/": (200, "application/json"),
    STATIC: (200, "text/javascript"),
    "/nope": (404, "application/problem+json"),
    "/api/products/x/": (404, "application/problem+json"),
}


@pytest.fixture
def healthy_upstreams(upstream_mock: Any) -> Any:
    product = {
        "id": 7, "sku": "SKU-00007", "name": "Kettle", "description": "", "category": "kitchen", "price": "9.99",
        "currency": "USD",
    }  # fmt: skip
    slow = {"source": "s", "message": "m", "latency_ms": 1.5, "items": []}
    upstream_mock.get("http://catalog.upstream.test/products/7").respond(json=product)
    upstream_mock.get("http://catalog.upstream.test/products").respond(
        json={"total": 1, "page": 1, "page_size": 20, "items": [product]}
    )
    upstream_mock.get(url__regex=r"http://(inventory|reviews|fx)\.upstream\.test/.*").respond(404)
    upstream_mock.get(url__regex=r"http://slow\.upstream\.test/.*").respond(json=slow)
    return upstream_mock


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", list(ROUTES))
async def test_every_method_on_every_path_is_documented_or_a_problem(
    healthy_upstreams: Any, settings: Any, path: str, method: str, debug: bool
) -> None:
    settings.DEBUG = debug
    client = AsyncClient(raise_request_exception=False)  # what a real client sees, not the test client's re-raise

    response = await client.generic(method, path)
    response.close()  # a static file is streamed from an open file

    get_status, get_type = ROUTES[path]
    if method == "HEAD":  # the same status and headers as GET, no body
        assert response.status_code == get_status, response.content[:300]
        assert response.headers["Content-Type"].startswith(get_type)
    elif get_status == 404:
        assert_problem(response, 404, "not_found")
    elif method == "GET":
        assert response.status_code == get_status, response.content[:300]
        assert response.headers["Content-Type"].startswith(get_type)
    elif method == "OPTIONS" and path != STATIC:
        # Answered by the resource itself: no body, the methods it takes.
        assert response.status_code == 204, response.content[:300]
        assert response.content == b""
        assert "Content-Type" not in response.headers
        assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    else:
        assert_problem(response, 405, "method_not_allowed")
        assert {"GET", "HEAD"} <= {m.strip() for m in response.headers["Allow"].split(",")}
    if response.status_code >= 400:
        assert b"<html" not in response.content.lower()
        assert b"Traceback" not in response.content


# Plain Django views that fail outside DRF: with DEBUG on, Django answers these with its technical HTML pages
# (handler500/404/400 are bypassed). Served through this module's URLconf, in front of the real one.
async def _raise_bug(request: Any) -> Any:
    raise RuntimeError("secret internals: /srv/app/settings.py")


async def _raise_404(request: Any) -> Any:
    raise Http404("secret internals: /srv/app/missing")


async def _raise_suspicious(request: Any) -> Any:
    raise SuspiciousOperation("secret internals: header smuggling")


urlpatterns = [
    path("boom/bug", _raise_bug),
    path("boom/404", _raise_404),
    path("boom/400", _raise_suspicious),
    *config_urls.urlpatterns,
]
handler400, handler403, handler404, handler500 = (
    config_urls.handler400, config_urls.handler403, config_urls.handler404, config_urls.handler500,
)  # fmt: skip


@pytest.mark.urls("tests.api.test_errors")
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize(
    ("url", "status", "code"),
    [("/boom/bug", 500, "internal_error"), ("/boom/404", 404, "not_found"), ("/boom/400", 400, "bad_request")],
)
async def test_errors_outside_drf_are_problems_whatever_debug_says_and_the_log_keeps_the_traceback(
    settings: Any, caplog: pytest.LogCaptureFixture, debug: bool, url: str, status: int, code: str
) -> None:
    settings.DEBUG = debug
    client = AsyncClient(raise_request_exception=False)

    with caplog.at_level(logging.WARNING):
        response = await client.get(url, headers={"Accept": "text/html"})

    assert_problem(response, status, code)
    assert b"secret internals" not in response.content
    if status == 500:
        record = next(r for r in caplog.records if r.exc_info is not None)
        assert "secret internals" in str(record.exc_info[1])  # type: ignore[index]


# --- The request is checked against exactly what the schema declares (finding: schemathesis disagreements) --------


@pytest.mark.parametrize("value", ["0", "-1", "3600.5", "1e9", "abc", "", "nan", "inf", "1_0", "+5", "0x10", "5s"])
async def test_request_timeout_outside_what_the_schema_declares_is_400(
    api: Any, healthy_upstreams: Any, value: str
) -> None:
    response = await api.get("/api/external-data/", headers={"Request-Timeout": value})

    body = assert_problem(response, 400, "invalid_request")
    assert body["errors"][0]["field"] == "Request-Timeout"


@pytest.mark.parametrize("value", ["3600", "2.5", "1e1", "0.75"])
async def test_request_timeout_the_schema_allows_is_accepted(api: Any, healthy_upstreams: Any, value: str) -> None:
    response = await api.get("/api/external-data/", headers={"Request-Timeout": value})

    assert response.status_code == 200, response.content


@pytest.mark.parametrize("query", ["currency=", "currency=%20EUR", "currency=EUR%0A", "currency=eur"])
async def test_currency_that_is_not_three_capitals_is_400_even_when_empty(
    api: Any, healthy_upstreams: Any, query: str
) -> None:
    response = await api.get(f"/api/products/7/?{query}")

    body = assert_problem(response, 400, "invalid_request")
    assert body["errors"][0]["field"] == "currency"


@pytest.mark.parametrize("value", ["", "%EF%BC%95", "%2B5", "5%0A", "%205", "5.0", "05x", "-0x1"])
async def test_page_size_is_plain_ascii_digits_only(api: Any, healthy_upstreams: Any, value: str) -> None:
    response = await api.get(f"/api/products/?page_size={value}")

    body = assert_problem(response, 400, "invalid_request")
    assert body["errors"][0]["field"] == "page_size"


async def test_plain_digits_are_still_a_page_size(api: Any, healthy_upstreams: Any) -> None:
    response = await api.get("/api/products/?page_size=5&page=1")

    assert response.status_code == 200, response.content


@pytest.mark.parametrize("path", ["/api/upstreams/", "/api/products/", "/healthz"])
@pytest.mark.parametrize("fmt", ["xml", "json", "api"])
async def test_format_query_parameter_is_ignored_like_any_unknown_one(
    api: Any, healthy_upstreams: Any, path: str, fmt: str
) -> None:
    response = await api.get(f"{path}?format={fmt}")

    assert response.status_code == 200, response.content
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "accept",
    [
        "application/problem+json",
        "application/json, application/problem+json",
        "application/*",
        "text/html;q=0.9, */*;q=0.1",
        "application/json; charset=utf-8",
    ],
)
async def test_accept_that_admits_json_or_problem_documents_gets_json(api: Any, accept: str) -> None:
    response = await api.get("/api/upstreams/", headers={"Accept": accept})

    assert response.status_code == 200, response.content
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "application/json;q=0, text/html"])
async def test_accept_without_json_is_a_406_problem(api: Any, accept: str) -> None:
    assert_problem(await api.get("/api/upstreams/", headers={"Accept": accept}), 406, "not_acceptable")


# --- The error contract: every code that can be emitted is published (schema enum and README table) ----------------

REPO = Path(__file__).resolve().parents[2]


def _literal_problem_codes() -> set[str]:
    """The code of every call shaped `f(<4xx/5xx status>, "<code>", ...)` in api/ and config/: `problem_response`
    and anything else that answers a problem document with a literal code (e.g. the HTTP protocol's own refusals).
    The upstream tree's codes are class attributes, walked separately."""
    found = set()
    for source in [*REPO.glob("api/**/*.py"), *REPO.glob("config/**/*.py")]:
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            status, code = node.args[0], node.args[1]
            if (
                isinstance(status, ast.Constant)
                and type(status.value) is int
                and 400 <= status.value <= 599
                and isinstance(code, ast.Constant)
                and isinstance(code.value, str)
                and re.fullmatch(r"[a-z_]+", code.value)
            ):
                found.add(code.value)
    return found


def _all_subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_all_subclasses(direct))]


def _readme_error_codes() -> dict[str, int]:
    section = (REPO / "README.md").read_text().split("## Errors", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    return {code: int(status) for status, code in rows}


def test_every_code_the_code_base_can_emit_is_published() -> None:
    emitted = _literal_problem_codes()
    emitted |= {cls.code for cls in [UpstreamError, *_all_subclasses(UpstreamError)]}
    for exc_class in _all_subclasses(exceptions.APIException):  # whatever DRF raises, the handler's code
        exc = exc_class(wait=1) if exc_class is exceptions.Throttled else exc_class(*_args_for(exc_class))
        emitted.add(orjson.loads(problems.exception_handler(exc, {}).content)["code"])
    assert {"upstream_not_found", "dependency_failed", "request_body_too_large"} <= emitted  # the scan works

    assert emitted <= set(problems.PROBLEM_CODES)
    assert set(problems.PROBLEM_CODES) == set(_readme_error_codes())


def _args_for(exc_class: type) -> tuple[Any, ...]:
    required = {exceptions.MethodNotAllowed: ("GET",), exceptions.UnsupportedMediaType: ("text/xml",)}
    return required.get(exc_class, ())


def test_readme_gives_each_code_the_status_the_api_answers_with() -> None:
    assert _readme_error_codes() == problems.PROBLEM_CODES


def test_schema_publishes_the_codes_as_an_enum() -> None:
    schema = yaml.safe_load((REPO / "openapi" / "schema.yaml").read_text())
    (code,) = schema["components"]["schemas"]["Problem"]["properties"]["code"]["allOf"]
    enum = schema["components"]["schemas"][code["$ref"].rsplit("/", 1)[1]]["enum"]

    assert set(enum) == set(problems.PROBLEM_CODES)
