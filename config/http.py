"""uvicorn's httptools protocol with the two limits it lacks: the size of a request's head and the time a client may
take to send its request.

uvicorn 0.54's `HttpToolsProtocol` (the fast parser, and uvicorn's default when httptools is installed) accepts a
request line and headers of any size (measured: one 100 MB header was accepted, the worker grew by 110 MB and its
loop froze for about a second) and gives a client unlimited time to send them: its only timer, `timeout_keep_alive`,
runs between requests, and any byte received cancels it (200 connections sending a header byte a second stayed
open indefinitely). h11 bounds the head (`h11_max_incomplete_event_size`, 16 KiB) but has no request timeout either,
and is a pure-Python parser.

`BoundedHttpToolsProtocol` adds, on top of the unchanged parser:

- `settings.MAX_REQUEST_HEAD_BYTES`: a request whose line and headers exceed it gets `431` (a problem document) and
  the connection is closed; the bytes held for a head never exceed it by more than one socket read (256 KiB).
- `settings.REQUEST_READ_TIMEOUT`: a request must arrive whole (head and body) within this many seconds of its first
  byte, and a new connection must start one within the same time; otherwise `408` (or, if nothing was sent, a plain
  close).

Used by `python -m config.serve` and `make run` (`uvicorn --http config.http:BoundedHttpToolsProtocol`); the limits
are read from the settings (so from the environment, validated at start-up) when a connection opens. Request bodies
are bounded by the application (settings.MAX_REQUEST_BODY_BYTES, config/handler.py). Pinned by
tests/test_client_limits.py against a real uvicorn.
"""

from __future__ import annotations

import asyncio
import uuid

import orjson
from django.conf import settings
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

__all__ = ["BoundedHttpToolsProtocol"]

# When the settings do not say (config/settings/base.py does, from the environment).
DEFAULT_MAX_HEAD_BYTES = 16 * 1024  # as h11 and Node.js
DEFAULT_REQUEST_TIMEOUT = 10.0


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.max_head_bytes: int = getattr(settings, "MAX_REQUEST_HEAD_BYTES", DEFAULT_MAX_HEAD_BYTES)
        self.request_timeout: float = getattr(settings, "REQUEST_READ_TIMEOUT", DEFAULT_REQUEST_TIMEOUT)
        self._head_bytes = 0
        self._in_head = True
        self._request_started = False
        self._request_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.request_timeout, self._request_timed_out
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_request_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():  # a head still incomplete after this read
            self._head_bytes += len(data)  # the head's part of this read, or all of it: at most one read more
            if self._head_bytes > self.max_head_bytes:
                self._refuse_head()

    # Parser callbacks, called from data_received. Once a request is refused (the transport is closing), the rest of
    # what that read holds is ignored.
    def on_message_begin(self) -> None:
        if self.transport.is_closing():
            return
        super().on_message_begin()
        self._head_bytes = 0
        self._in_head = True
        self._request_started = True
        if self._request_timer is None:
            self._request_timer = self.loop.call_later(self.request_timeout, self._request_timed_out)

    def on_url(self, url: bytes) -> None:
        if not self.transport.is_closing():
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.transport.is_closing():
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self.transport.is_closing():
            return
        self._in_head = False
        # A head that arrived whole in one read: its size, from what was parsed (the line's spaces and version, each
        # header's ": " and CRLF).
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) + 16
        if size > self.max_head_bytes:
            self._refuse_head()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel_request_timer()
        if not self.transport.is_closing():
            super().on_message_complete()

    def _refuse_head(self) -> None:
        self._refuse(431, "request_header_too_large", f"The request head exceeds {self.max_head_bytes} bytes.")

    def _cancel_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _request_timed_out(self) -> None:
        self._request_timer = None
        if self.transport.is_closing():
            return
        responding = self.cycle is not None and not self.cycle.response_complete and self.cycle.response_started
        if self._request_started and not responding:
            self._refuse(408, "request_timeout", f"The request did not arrive within {self.request_timeout:g} s.")
        else:
            self.transport.close()  # nothing sent on a new connection; or a response is under way: just stop

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """Answer a problem document (as api/problems.py shapes them) and close: the request never reaches the app."""
        rid = uuid.uuid4().hex
        body = orjson.dumps(
            {
                "type": f"urn:tributary:problem:{code}",
                "title": STATUS_LINE[status].decode().split(" ", 2)[2].strip(),
                "status": status,
                "detail": detail,
                "code": code,
                "request_id": rid,
            }
        )
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/problem+json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"x-request-id: " + rid.encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.logger.warning("Refused a request (%s): %s", status, detail)
        self.transport.write(b"".join(head) + body)
        self.transport.close()
        self._cancel_request_timer()
        self._in_head = False
