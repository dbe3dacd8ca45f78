"""OpenAPI helpers: every documented error is a problem document under `application/problem+json`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse

from .problems import PROBLEM_CONTENT_TYPE
from .serializers import Problem

__all__ = ["problems"]

_DESCRIPTIONS = {
    400: "Invalid query parameters (`invalid_request`); `errors` lists each field.",
    404: "The resource does not exist (`not_found`).",
    500: "Unexpected server error (`internal_error`); details are in the server log under `request_id`.",
    502: "An upstream failed: error status (`upstream_status`), broken connection (`upstream_protocol_error`) or "
    "unusable payload (`upstream_invalid_json`, `upstream_bad_content_type`, `upstream_body_too_large`, "
    "`upstream_invalid_payload` with the failing fields in `errors`).",
    503: "An upstream could not be reached (`upstream_unreachable`).",
    504: "An upstream was too slow (`upstream_timeout`) or the request's deadline passed (`deadline_exceeded`).",
}


def problems(*statuses: int) -> dict[tuple[int, str], Any]:
    """`extend_schema(responses=...)` entries for these error statuses."""
    return {
        (status, PROBLEM_CONTENT_TYPE): OpenApiResponse(response=Problem, description=_DESCRIPTIONS[status])
        for status in statuses
    }
