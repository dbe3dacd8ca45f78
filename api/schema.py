"""OpenAPI helpers: every documented error is a problem document under `application/problem+json`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from .problems import PROBLEM_CONTENT_TYPE
from .serializers import Problem

__all__ = ["AGGREGATE_HEADERS", "drop_anonymous_security", "problems"]

_DESCRIPTIONS = {
    400: "Invalid query parameters or `Request-Timeout` header (`invalid_request`); `errors` lists each field.",
    404: "The resource does not exist (`not_found`).",
    500: "Unexpected server error (`internal_error`); details are in the server log under `request_id`.",
    502: "An upstream failed: error status (`upstream_status`), broken connection (`upstream_protocol_error`) or "
    "unusable payload (`upstream_invalid_json`, `upstream_bad_content_type`, `upstream_body_too_large`, "
    "`upstream_invalid_payload` with the failing fields in `errors`).",
    503: "An upstream could not be reached (`upstream_unreachable`), its circuit breaker is open (`circuit_open`, "
    "with a `Retry-After` header), or it has too many calls in flight (`upstream_saturated`).",
    504: "An upstream was too slow (`upstream_timeout`) or the request's deadline passed (`deadline_exceeded`).",
}


def problems(*statuses: int) -> dict[tuple[int, str], Any]:
    """`extend_schema(responses=...)` entries for these error statuses."""
    return {
        (status, PROBLEM_CONTENT_TYPE): OpenApiResponse(response=Problem, description=_DESCRIPTIONS[status])
        for status in statuses
    }


SERVER_TIMING = OpenApiParameter(
    "Server-Timing",
    str,
    OpenApiParameter.HEADER,
    response=[200],
    description="One entry per upstream call: its duration and outcome (miss, hit, revalidated, stale, shared, "
    "retried=N, or an error code).",
)
REQUEST_TIMEOUT = OpenApiParameter(
    "Request-Timeout",
    float,
    OpenApiParameter.HEADER,
    description="Seconds this request may take at most: shortens the server's own deadline, never lengthens it.",
)
AGGREGATE_HEADERS = [REQUEST_TIMEOUT, SERVER_TIMING]


def drop_anonymous_security(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: remove `security: [{}]` ("anonymous allowed") from operations.

    The API has no authentication, so the entry says nothing, and client generators read any `security` as
    "needs credentials" (openapi-python-client then types every call as needing an AuthenticatedClient).
    """
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if operation.get("security") == [{}]:
                del operation["security"]
    return result
