"""Per-request context that upstream calls carry along without every function passing it.

- `request_id`: set once per request by the web layer; every upstream call made while serving that request
  (including from tasks the fan-out starts, which copy the context) forwards it as `X-Request-ID`.
- `deadline`: when the whole request must be done (`time.monotonic()` seconds), set by `fan_out`; each upstream
  attempt gets the smaller of its own timeout and what is left, and no retry starts that could not finish in time.
- `incoming_headers`: the end user's request headers (a case-insensitive mapping, set by the web layer); an upstream
  call forwards only the names its `FORWARD_HEADERS` lists, and keys its cache and coalescing by their values.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import ContextVar

__all__ = ["REQUEST_ID_HEADER", "deadline", "incoming_headers", "remaining", "request_id"]

REQUEST_ID_HEADER = "X-Request-ID"

request_id: ContextVar[str | None] = ContextVar("tributary_request_id", default=None)

deadline: ContextVar[float | None] = ContextVar("tributary_deadline", default=None)

incoming_headers: ContextVar[Mapping[str, str] | None] = ContextVar("tributary_incoming_headers", default=None)


def remaining() -> float | None:
    """Seconds left before the request's deadline (may be negative), or None when there is none."""
    ends_at = deadline.get()
    return None if ends_at is None else ends_at - time.monotonic()
