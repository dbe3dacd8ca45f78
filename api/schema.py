"""OpenAPI helpers: every documented error is a problem document under `application/problem+json`; and the API's
schema class, `AutoSchema`, which keeps drf-spectacular's generator out of a worker until a schema is generated.

drf-spectacular's `extend_schema` subclasses `DEFAULT_SCHEMA_CLASS` when a view is declared, and DRF's router
instantiates it for every viewset it registers: were that drf-spectacular's `AutoSchema`, every worker would import
its generator's plumbing (`django.test`, `unittest`, `rest_framework.test`, `uritemplate`...: about 80 modules, 4 MB).
Ours starts as a bare `ViewInspector` (DRF's base of every schema class), and when a schema is generated (a view
given to a schema: what every generation does before it asks the schema anything) it takes drf-spectacular's
`AutoSchema` as its base (`__bases__`), for itself and for every class made from it (`extend_schema`'s,
`DeclaredSchema`) at once, after importing the API keys' extension (api/clients/schema.py). From then on the classes
are exactly drf-spectacular's with one property more; tests/test_startup_imports.py pins the served schema against
openapi/schema.yaml and what a worker imports before and after.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.schemas.inspectors import ViewInspector

from upstreams import REQUEST_ID_HEADER

from .problems import PROBLEM_CODES, PROBLEM_CONTENT_TYPE
from .serializers import Problem

__all__ = ["AGGREGATE_HEADERS", "NOT_MODIFIED", "REQUEST_ID", "AutoSchema", "drop_anonymous_security", "problems"]

# What each error status means; the codes that come with it are appended from `PROBLEM_CODES`, so a new code (an
# upstream error class, an API-level problem) is documented without editing this.
_MEANINGS = {
    400: "Invalid query parameters or `Request-Timeout` header (`errors` lists each field), or a malformed request.",
    404: "The resource does not exist.",
    406: "The `Accept` header admits neither `application/json` nor `application/problem+json`.",
    413: "The request body is larger than the service takes (`MAX_REQUEST_BODY_BYTES`).",
    500: "Unexpected server error; details are in the server log under `request_id`.",
    502: "An upstream failed: it answered with an error status, the exchange broke, its payload is unusable (with "
    "the failing fields in `errors`), or a call this one needs failed first.",
    503: "An upstream could not be reached, its circuit breaker is open (`Retry-After` says when to try again), or "
    "it has too many calls in flight.",
    504: "An upstream was too slow, or the request's deadline passed.",
}


def _description(status: int) -> str:
    codes = ", ".join(f"`{code}`" for code, code_status in PROBLEM_CODES.items() if code_status == status)
    return f"{_MEANINGS[status]} Codes: {codes}."


REQUEST_ID = OpenApiParameter(
    REQUEST_ID_HEADER,
    str,
    OpenApiParameter.HEADER,
    response=True,
    description="The request's id, also the problem document's `request_id` and on every log line: the client's own "
    "`X-Request-ID` when it sent a plain one (1-128 of `A-Za-z0-9._:-`), else a new one.",
)
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    int,
    OpenApiParameter.HEADER,
    response=[503],
    description="Seconds until the upstream's circuit breaker lets a call through again (with `circuit_open`).",
)


def problems(*statuses: int) -> dict[tuple[int, str], Any]:
    """`extend_schema(responses=...)` entries for these error statuses; every operation can also answer 406."""
    return {
        (status, PROBLEM_CONTENT_TYPE): OpenApiResponse(response=Problem, description=_description(status))
        for status in sorted({*statuses, 406})
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
    # What TributaryViewSet.requested_deadline() takes: a decimal number of seconds, 0 < n <= 3600.
    {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
    OpenApiParameter.HEADER,
    description="Seconds this request may take at most, more than 0 and at most 3600: shortens the server's own "
    "deadline, never lengthens it.",
)
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    str,
    OpenApiParameter.HEADER,
    description="An `ETag` this client holds (or a comma-separated list, or `*`): when the response would have that "
    "tag, the answer is 304 with no body.",
)
ETAG = OpenApiParameter(
    "ETag",
    str,
    OpenApiParameter.HEADER,
    response=[200, 304],
    description="A strong entity tag over the response body: send it back in `If-None-Match` to get 304 when the "
    "body has not changed.",
)
CACHE_CONTROL = OpenApiParameter(
    "Cache-Control",
    str,
    OpenApiParameter.HEADER,
    response=[200, 304],
    description="How long the response may be reused: the strictest of its upstream parts' (the smallest max-age; "
    "`private` when a part is private or user-specific, or the response is for an authenticated client; `no-store` "
    "when a part must not be stored); `max-age=0` when a part is missing or stale.",
)
NOT_MODIFIED = OpenApiResponse(
    description="Not Modified: the request's `If-None-Match` names this response's `ETag`. No body; the same "
    "`ETag` and `Cache-Control` headers."
)
# Every operation answers with X-Request-ID; the 503s of upstream calls can carry Retry-After.
COMMON_HEADERS = [REQUEST_ID, RETRY_AFTER]
AGGREGATE_HEADERS = [REQUEST_TIMEOUT, IF_NONE_MATCH, SERVER_TIMING, ETAG, CACHE_CONTROL, *COMMON_HEADERS]


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


class AutoSchema(ViewInspector):
    """`REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]`: drf-spectacular's `AutoSchema` once a schema is generated."""

    @property
    def view(self) -> Any:
        return ViewInspector.view.fget(self)  # type: ignore[attr-defined]

    @view.setter
    def view(self, value: Any) -> None:
        if value is not None:  # a view to describe: a schema is being generated
            load_generator()
        ViewInspector.view.fset(self, value)  # type: ignore[attr-defined]


def load_generator() -> None:
    """Make `AutoSchema` drf-spectacular's, with the API's extensions registered (once; idempotent)."""
    if AutoSchema.__bases__ == (ViewInspector,):
        from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

        from .clients import schema as key_schemes

        assert key_schemes  # imported for its OpenAPI extension (the API keys' security schemes): registered on import
        AutoSchema.__bases__ = (SpectacularAutoSchema,)
