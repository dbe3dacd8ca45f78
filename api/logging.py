"""Puts the current request id on every log record, so one request's lines can be found together."""

from __future__ import annotations

import logging

from upstreams import request_id


class RequestIDFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True
