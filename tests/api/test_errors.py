"""Errors outside the upstream tree: unknown URLs, wrong methods, and bugs. Always a problem document, never HTML,
never exception text."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from api import aggregates
from tests.api.helpers import assert_problem


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
