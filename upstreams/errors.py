"""The upstream error taxonomy: every way an upstream call can fail, as one rooted tree.

Everything raised out of `upstreams/` for a failed call is an `UpstreamError`, and every one carries the name of the
upstream it concerns and a machine-readable `code`. The web layer (`api/`) maps this tree to HTTP; nothing here knows
about HTTP status codes of *our* responses.

    UpstreamError
    ├── UpstreamUnavailable            the upstream could not be used at all
    │   ├── UpstreamConnectError       connection refused, DNS failure, TLS failure
    │   ├── UpstreamTimeout            the call's own time budget ran out
    │   │   └── DeadlineExceeded       the whole request's deadline ran out first
    │   ├── CircuitOpen                not attempted: the upstream's circuit breaker is open
    │   └── UpstreamSaturated          not attempted: no free slot in the upstream's bulkhead in time
    ├── UpstreamStatusError            the upstream answered with a non-2xx status
    │   └── UpstreamNotFound           ... and that status was 404
    ├── UpstreamProtocolError          the connection broke mid-response, or the HTTP was garbage (any exception
    │                                  of the transport's that says neither "unreachable" nor "timed out")
    ├── UpstreamBadResponse            a response arrived, but we cannot use its body (raised as itself for a
    │   │                              content coding we did not ask for, stacked codings, or one that does not
    │   │                              decode)
    │   ├── UpstreamBadContentType     not JSON
    │   ├── UpstreamInvalidJSON        says JSON, does not parse
    │   ├── UpstreamBodyTooLarge       over the configured size limit, decoded (refused as soon as it is known)
    │   └── UpstreamPayloadInvalid     parses, but does not have the expected shape
    └── DependencyFailed               not attempted: a call it needed failed first
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "CircuitOpen",
    "DeadlineExceeded",
    "DependencyFailed",
    "UpstreamBadContentType",
    "UpstreamBadResponse",
    "UpstreamBodyTooLarge",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamInvalidJSON",
    "UpstreamNotFound",
    "UpstreamPayloadInvalid",
    "UpstreamProtocolError",
    "UpstreamSaturated",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class UpstreamError(Exception):
    """Base class: a call to the named upstream failed.

    `detail` is safe to show a client: it never contains a byte the upstream chose (a body, a header value such as
    its Content-Type, a status line), a URL with credentials or a traceback.
    """

    code = "upstream_error"
    default_detail = "The upstream service failed."

    def __init__(self, upstream: str, detail: str | None = None) -> None:
        self.upstream = upstream
        self.detail = detail or self.default_detail
        super().__init__(f"{upstream}: {self.detail}")


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    default_detail = "The upstream service is unavailable."


class UpstreamConnectError(UpstreamUnavailable):
    code = "upstream_unreachable"
    default_detail = "Could not connect to the upstream service."


class UpstreamTimeout(UpstreamUnavailable):
    code = "upstream_timeout"
    default_detail = "The upstream service did not answer in time."


class DeadlineExceeded(UpstreamTimeout):
    code = "deadline_exceeded"
    default_detail = "The request's deadline passed before the upstream service answered."


class CircuitOpen(UpstreamUnavailable):
    """Failing fast: recent calls failed, so the upstream is left alone until `retry_after` seconds pass."""

    code = "circuit_open"

    def __init__(self, upstream: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(upstream, "The upstream service is failing; calls are paused for a moment.")


class UpstreamSaturated(UpstreamUnavailable):
    code = "upstream_saturated"
    default_detail = "Too many calls to the upstream service are in progress."


class UpstreamStatusError(UpstreamError):
    """A non-2xx answer. `retry_after` is the upstream's own Retry-After, in seconds, when it sent one."""

    code = "upstream_status"

    def __init__(
        self, upstream: str, status_code: int, detail: str | None = None, *, retry_after: float | None = None
    ) -> None:
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(upstream, detail or f"The upstream service answered with HTTP {status_code}.")


class UpstreamNotFound(UpstreamStatusError):
    code = "upstream_not_found"

    def __init__(self, upstream: str, detail: str | None = None) -> None:
        super().__init__(upstream, 404, detail or "The upstream service has no such resource.")


class UpstreamProtocolError(UpstreamError):
    code = "upstream_protocol_error"
    default_detail = "The connection to the upstream service broke before a complete response arrived."


class UpstreamBadResponse(UpstreamError):
    code = "upstream_bad_response"
    default_detail = "The upstream service sent a response that cannot be used."


class UpstreamBadContentType(UpstreamBadResponse):
    code = "upstream_bad_content_type"
    default_detail = "The upstream service did not answer with JSON."


class UpstreamInvalidJSON(UpstreamBadResponse):
    code = "upstream_invalid_json"
    default_detail = "The upstream service sent a body that is not valid JSON."


class UpstreamBodyTooLarge(UpstreamBadResponse):
    code = "upstream_body_too_large"

    def __init__(self, upstream: str, limit: int) -> None:
        self.limit = limit
        super().__init__(upstream, f"The upstream response body is larger than the {limit}-byte limit.")


class UpstreamPayloadInvalid(UpstreamBadResponse):
    """The payload parsed but failed validation.

    `fields` maps each failing path (`items[3].price`) to an error code (`invalid`, `required`, ...): never a value
    from the payload, which may be large or sensitive. A path can hold a key the upstream chose (a dictionary's):
    a segment that is not a plain name or an index is shown as `*`, so no text of the upstream's reaches a client.
    """

    code = "upstream_invalid_payload"

    def __init__(self, upstream: str, fields: Mapping[str, str]) -> None:
        self.fields: dict[str, str] = {}
        for path, code in fields.items():
            self.fields.setdefault(_safe_path(path), code)
        paths = list(self.fields)
        shown = ", ".join(paths[:10]) + (" ..." if len(paths) > 10 else "")
        super().__init__(upstream, f"The upstream payload failed validation at: {shown}.")


class DependencyFailed(UpstreamError):
    code = "dependency_failed"

    def __init__(self, upstream: str, dependency: str) -> None:
        self.dependency = dependency
        super().__init__(upstream, f"Not attempted: the call it depends on ({dependency}) failed.")


_SAFE_PATH = re.compile(r"\(root\)|[A-Za-z_][A-Za-z0-9_]{0,63}(?:\.[A-Za-z_][A-Za-z0-9_]{0,63}|\[\d{1,9}\])*")


def _safe_path(path: str) -> str:
    """`path` if every segment is a plain name or an index, else its longest such prefix followed by `.*`."""
    if _SAFE_PATH.fullmatch(path):
        return path
    for cut in reversed([i for i, char in enumerate(path) if char in ".["]):
        if _SAFE_PATH.fullmatch(path[:cut]):
            return path[:cut] + ".*"
    return "*"
