"""Per-request context that upstream calls carry along without every function passing it.

The web layer sets `request_id` once per request; every upstream call made while serving that request (including
from tasks the fan-out starts, which copy the context) forwards it as `X-Request-ID`.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["REQUEST_ID_HEADER", "request_id"]

REQUEST_ID_HEADER = "X-Request-ID"

request_id: ContextVar[str | None] = ContextVar("tributary_request_id", default=None)
