"""Assertions shared by the API tests."""

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
