"""The web side of logging: the request id on every record, no duplicate lines for errors we already logged, and the
access line (one per request, written by `AccessLog`, a request observer; its format is config/logging.py's)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from upstreams import request_id

from .observe import RequestObserver, RequestRecord

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

__all__ = ["AccessLog", "RequestIDFilter", "SkipHandledResponses", "upstream_summary"]

access_logger = logging.getLogger("tributary.access")


class RequestIDFilter(logging.Filter):
    """The request's id on every record: the current request's, else one the record was given (`extra=`: the access
    line, written once the request is over), else "-"."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or getattr(record, "request_id", None) or "-"
        return True


class SkipHandledResponses(logging.Filter):
    """For `django.request`: Django logs every 4xx/5xx response; the problem handler already logged ours.

    Records with a traceback (an exception that escaped every handler) are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is not None


def upstream_summary(record: RequestRecord) -> str:
    """`catalog=miss:3.1ms inventory=retried(1):52.0ms fx=upstream_timeout:2000.3ms`, in the order calls ended."""
    parts = []
    for call in record.calls:
        retries = f"({call.retries})" if call.retries else ""
        parts.append(f"{call.upstream}={call.outcome}{retries}:{call.seconds * 1000:.1f}ms")
    return " ".join(parts)


class AccessLog(RequestObserver):
    """The access line: INFO on `tributary.access` (LOG_LEVEL=WARNING turns it off)."""

    def finished(self, request: HttpRequest, response: HttpResponseBase | None, record: RequestRecord) -> None:
        if not access_logger.isEnabledFor(logging.INFO):
            return
        duration_ms = round(record.seconds * 1000, 1)
        summary = upstream_summary(record)
        access_logger.info(
            "%s %s %s %.1fms%s",
            record.method,
            record.route,
            record.status,
            duration_ms,
            f" client={record.client} upstreams={summary}" if summary else f" client={record.client}",
            extra={
                "request_id": record.request_id,
                "method": record.method,
                "route": record.route,
                "path": request.path,
                "status": record.status,
                "duration_ms": duration_ms,
                "client": record.client,
                "upstreams": summary,
            },
        )
