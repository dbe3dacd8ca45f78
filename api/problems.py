"""Every error the API returns is an RFC 9457 problem document (`application/problem+json`), built here.

    {"type": "urn:tributary:problem:upstream_timeout", "title": "Gateway Timeout", "status": 504,
     "detail": "The upstream service did not answer in time.", "code": "upstream_timeout",
     "request_id": "9f1c...", "upstream": "reviews"}

`exception_handler` is DRF's hook (settings.REST_FRAMEWORK) and turns the upstream error tree, DRF's exceptions and
anything unexpected into that shape; `handler400/404/500` do the same for errors Django raises outside DRF views, and
`ProblemResponseMiddleware` for the error pages Django and WhiteNoise make themselves (Django's debug pages when
DEBUG is on). A response never carries exception text or a traceback: those go to the log, with the request id.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

import orjson
from asgiref.sync import markcoroutinefunction
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from rest_framework import exceptions

from upstreams import (
    CircuitOpen,
    UpstreamError,
    UpstreamPayloadInvalid,
    UpstreamTimeout,
    UpstreamUnavailable,
    request_id,
)

__all__ = [
    "API_PROBLEMS",
    "PROBLEM_CODES",
    "PROBLEM_CODE_CHOICES",
    "PROBLEM_CONTENT_TYPE",
    "ProblemResponseMiddleware",
    "error_code",
    "exception_handler",
    "flatten_errors",
    "handler400",
    "handler403",
    "handler404",
    "handler500",
    "not_found_view",
    "problem_response",
    "upstream_codes",
    "upstream_status",
]

logger = logging.getLogger("tributary.problems")

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:tributary:problem:"

# Most specific first: the first class an error is an instance of decides our status.
_UPSTREAM_STATUS: tuple[tuple[type[UpstreamError], int], ...] = (
    (UpstreamTimeout, 504),
    (UpstreamUnavailable, 503),
    (UpstreamError, 502),
)


def upstream_status(exc: UpstreamError) -> int:
    return _upstream_class_status(type(exc))


def _upstream_class_status(error_class: type[UpstreamError]) -> int:
    return next(status for cls, status in _UPSTREAM_STATUS if issubclass(error_class, cls))


# The codes the web layer answers with itself, and their statuses. The upstream error tree brings its own codes
# (`code` on each class); together they are `PROBLEM_CODES`, published as the schema's enum for `Problem.code` and
# listed in the README's error table (tests/api/test_errors.py keeps all three and the code base in step).
API_PROBLEMS: dict[str, int] = {
    "invalid_request": 400,
    "bad_request": 400,
    "not_authenticated": 401,  # DRF's, for authentication classes (none is configured yet)
    "authentication_failed": 401,
    "permission_denied": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "request_timeout": 408,  # config/http.py: the request did not arrive in time (answered before the app)
    "request_body_too_large": 413,
    "request_header_too_large": 431,  # config/http.py: the request line and headers are over the limit
    "rate_limited": 429,  # api/clients/ratelimit.py: over the caller's rate limit
    "throttled": 429,  # DRF's, for other throttle classes (none is configured)
    "internal_error": 500,
}


def upstream_codes() -> dict[str, int]:
    """Every code of the upstream error tree, walked: a new error class is published without a list to edit."""
    found: dict[str, int] = {}
    pending: list[type[UpstreamError]] = [UpstreamError]
    while pending:
        error_class = pending.pop(0)
        found.setdefault(error_class.code, _upstream_class_status(error_class))
        pending.extend(error_class.__subclasses__())
    return found


def _problem_codes() -> dict[str, int]:
    codes = {**API_PROBLEMS, **upstream_codes()}
    return dict(sorted(codes.items(), key=lambda item: item[1]))  # by status; stable within one


PROBLEM_CODES: dict[str, int] = _problem_codes()
# `Problem.code`'s choices, labelled with their status; published as the `ProblemCode` enum (ENUM_NAME_OVERRIDES).
PROBLEM_CODE_CHOICES: list[tuple[str, str]] = [(code, f"HTTP {status}") for code, status in PROBLEM_CODES.items()]


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    upstream: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpResponse:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id.get(),
    }
    if upstream is not None:
        body["upstream"] = upstream
    if errors is not None:
        body["errors"] = errors
    return HttpResponse(orjson.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE, headers=headers)


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> HttpResponse:
    """DRF's exception hook: every exception raised in a view becomes a problem response."""
    if isinstance(exc, UpstreamError):
        return _upstream_problem(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        return problem_response(
            400, "invalid_request", "The request has invalid parameters.", errors=_field_errors(exc.detail)
        )
    if isinstance(exc, exceptions.APIException):
        headers = {}
        wait = getattr(exc, "wait", None)  # set by Throttled
        if wait is not None:
            headers["Retry-After"] = str(int(wait))
        auth_header = getattr(exc, "auth_header", None)  # set by DRF's handle_exception() on a 401: its challenge
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        return problem_response(exc.status_code, _api_code(exc), str(exc.detail), headers=headers)
    logger.error("Unhandled exception while serving the request", exc_info=exc)
    return _internal_error()


def _api_code(exc: exceptions.APIException) -> str:
    """DRF's code for the exception when it is one we publish; else the published code for its status.

    Publishing a code is a decision (the README and generated clients list it): a DRF exception this API cannot
    raise today (a body it cannot parse: it reads no bodies) gets the generic code for its status instead.
    """
    code = str(exc.default_code)
    if code in API_PROBLEMS:
        return code
    return _status_problem(exc.status_code)[0]


def _status_problem(status: int) -> tuple[str, str]:
    return _STATUS_PROBLEMS.get(status) or _STATUS_PROBLEMS[400 if status < 500 else 500]


def _upstream_problem(exc: UpstreamError) -> HttpResponse:
    status = upstream_status(exc)
    logger.warning("Upstream %s failed: %s (%s)", exc.upstream, exc.code, exc.detail, exc_info=exc.__cause__)
    errors = None
    if isinstance(exc, UpstreamPayloadInvalid):
        errors = [{"field": path, "code": code} for path, code in exc.fields.items()]
    headers = {}
    if isinstance(exc, CircuitOpen):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return problem_response(status, exc.code, exc.detail, upstream=exc.upstream, errors=errors, headers=headers)


def _field_errors(detail: Any) -> list[dict[str, str]]:
    """DRF's nested error detail -> a flat list of {field, code, message} (the client's own input: safe to echo)."""
    return [
        {"field": path or "(request)", "code": error_code(error), "message": str(error)}
        for path, error in flatten_errors(detail)
    ]


def flatten_errors(detail: Any, path: str = "") -> list[tuple[str, Any]]:
    """DRF's nested error detail (dicts by field, lists by index) -> (`items[3].price`, error) per error."""
    if isinstance(detail, Mapping):
        return [
            pair
            for key, value in detail.items()
            for pair in flatten_errors(value, path if key == "non_field_errors" else _join(path, str(key)))
        ]
    if isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail) for item in detail):
            return [(path, item) for item in detail]
        return [pair for i, item in enumerate(detail) for pair in flatten_errors(item, f"{path}[{i}]")]
    return [(path, detail)]


def error_code(error: Any) -> str:
    return str(getattr(error, "code", None) or "invalid")


def _join(path: str, key: str) -> str:
    if key.isdigit():  # DRF keys ListField/DictField item errors by index
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _internal_error() -> HttpResponse:
    return problem_response(500, "internal_error", "The server failed to handle the request; it has been logged.")


# Django's own error views (config/urls.py), for errors raised outside DRF views.


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return problem_response(400, "bad_request", "The request is malformed.")


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return problem_response(403, "permission_denied", "You do not have permission to perform this action.")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return problem_response(404, "not_found", f"There is nothing at {request.path!r}.")


def handler500(request: HttpRequest) -> HttpResponse:
    return _internal_error()


async def not_found_view(request: HttpRequest) -> HttpResponse:
    """The catch-all route: async, so an unknown URL costs no thread hop."""
    return handler404(request)


# Error responses made outside our handlers: their status decides the code.
_STATUS_PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "The request is malformed."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "There is nothing at this URL."),
    405: ("method_not_allowed", "This resource does not take that method; `Allow` lists the ones it takes."),
    406: ("not_acceptable", "This resource can only answer with JSON."),
    500: ("internal_error", "The server failed to handle the request; it has been logged."),
}
_KEPT_HEADERS = ("Allow", "Retry-After")
_JSON_TYPES = frozenset({"application/json", PROBLEM_CONTENT_TYPE})


class ProblemResponseMiddleware:
    """Every error response is a problem document, whoever made it and whatever DEBUG says.

    Some error responses are made by Django itself, not by our handlers: with DEBUG on, an exception that escapes a
    view becomes Django's technical 500 page (HTML with a traceback, settings and file paths), an `Http404` its
    technical 404 page and a `SuspiciousOperation` a technical page with status 400, because Django's
    `response_for_exception` only calls `handler500/404/400` with DEBUG off. WhiteNoise answers 405 to a static
    file's non-GET with an empty body. Django has already logged such an exception (`django.request`, with its
    traceback) by the time the response gets here, so this replaces only the body: an error response that is not
    JSON becomes the problem document for its status, keeping `Allow` and `Retry-After`.

    Async-native (no thread hop); it sits inside `RequestContextMiddleware`, so the request id is known. Django's
    DEBUG_PROPAGATE_EXCEPTIONS (for test harnesses; never set here) makes Django re-raise instead of answering: the
    exception then passes through here untouched, as Django intends.
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = await self.get_response(request)
        if response.status_code < 400 or _media_type(response) in _JSON_TYPES:
            return response
        status = response.status_code
        code, detail = _status_problem(status)
        headers = {name: response[name] for name in _KEPT_HEADERS if response.has_header(name)}
        response.close()  # e.g. WhiteNoise's (empty) file response
        return problem_response(status, code, detail, headers=headers)


def _media_type(response: HttpResponseBase) -> str:
    return response.get("Content-Type", "").partition(";")[0].strip().lower()
