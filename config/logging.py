"""Logging set-up: one line per record, JSON (production's default) or readable (local), `LOG_FORMAT` decides.

`logging_settings()` builds Django's LOGGING for both formats from the same filters, so every record carries the
request id (api/logging.py) and the trace id (`TraceIDFilter`, "-" when tracing is off or the record is outside a
request). `api.logging.AccessLog` writes the access line, one per request:

    {"time": "2026-11-27T08:01:02.345Z", "level": "INFO", "logger": "tributary.access",
     "message": "GET /api/products/{id}/ 200 12.4ms", "request_id": "9f0c...", "trace_id": "4bf92f...",
     "method": "GET", "route": "/api/products/{id}/", "path": "/api/products/7/", "status": 200,
     "duration_ms": 12.4, "client": "anonymous", "upstreams": "catalog=miss:3.1ms inventory=hit:0.1ms ..."}

A record with an exception carries its traceback in the same line (`"traceback"`, newlines escaped by JSON); the
readable format prints it below the line, as the standard formatter does. Every handler writes synchronously to a
stream from the event loop (a short write to a pipe or a file): no logger call goes through an executor.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

__all__ = ["FORMATS", "READABLE_FORMAT", "JSONFormatter", "TraceIDFilter", "logging_settings"]

FORMATS = ("json", "readable")

# The attributes every LogRecord has: anything else on a record came from `extra=` and goes into the JSON line.
# (uvicorn adds `color_message`: the message with terminal colour codes.)
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "trace_id",
    "color_message",
}


class TraceIDFilter(logging.Filter):
    """The current trace's id on every record (32 hex digits, as in `traceparent`), "-" when there is none.

    OpenTelemetry's API is not imported for this: while nothing has imported `opentelemetry.trace` (tracing off,
    config/tracing.py), no span can be current, since a span only becomes current through that module."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace = sys.modules.get("opentelemetry.trace")
        context = trace.get_current_span().get_span_context() if trace is not None else None
        record.trace_id = format(context.trace_id, "032x") if context is not None and context.trace_id else "-"
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ms), level, logger, message, request and trace ids, then the record's
    `extra` fields; `traceback` for a record with an exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "trace_id": getattr(record, "trace_id", "-"),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def _utc(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


READABLE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(trace_id)s] %(message)s"


def logging_settings(log_format: str, *, level: str) -> dict[str, Any]:
    """Django's LOGGING: every record through one console handler, in `log_format` ("json" or "readable")."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "api.logging.RequestIDFilter"},
            "trace_id": {"()": "config.logging.TraceIDFilter"},
            "skip_handled": {"()": "api.logging.SkipHandledResponses"},
        },
        "formatters": {
            "readable": {"format": READABLE_FORMAT},
            "json": {"()": "config.logging.JSONFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["request_id", "trace_id"],
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django logs every 4xx/5xx response itself; api/problems.py already logged what matters.
            "django.request": {"level": "WARNING", "filters": ["skip_handled"]},
            # One INFO line per upstream request is too much by default; failures are logged by api/problems.py.
            "httpx": {"level": "WARNING"},
        },
    }
