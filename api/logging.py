"""Logging filters: the request id on every record, and no duplicate lines for errors we already logged."""

from __future__ import annotations

import logging

from upstreams import request_id


class RequestIDFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


class SkipHandledResponses(logging.Filter):
    """For `django.request`: Django logs every 4xx/5xx response; the problem handler already logged ours.

    Records with a traceback (an exception that escaped every handler) are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is not None
