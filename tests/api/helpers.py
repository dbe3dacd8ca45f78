"""Assertions and upstream payloads shared by the API tests."""

from __future__ import annotations

from typing import Any

import respx


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem document with this status and code; returns its body."""
    assert response.status_code == status, response.content
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:tributary:problem:{code}"
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "Traceback" not in response.content.decode()
    return body


def fail(route: respx.Route, failure: Any) -> None:
    """Make a mocked upstream route answer `failure`: an httpx.Response, or an exception to raise."""
    if isinstance(failure, Exception):
        route.side_effect = failure
    else:
        route.side_effect = None
        route.return_value = failure


# A catalog product and the optional parts of its overview, as the upstreams send them.
PRODUCT = {
    "id": 7,
    "sku": "SKU-00007",
    "name": "Gilded Kettle",
    "description": "A kettle.",
    "category": "kitchen",
    "price": "20.00",
    "currency": "USD",
    "tags": ["gift"],
}
STOCK = {"sku": "SKU-00007", "available": 3, "warehouse": "AMS-1", "updated_at": "2026-01-01T00:00:00Z"}
REVIEW = {"product_id": 7, "average_rating": 4.5, "count": 12}
RATES = {"base": "USD", "as_of": "2026-01-01", "rates": {"EUR": "0.92", "USD": "1"}}
