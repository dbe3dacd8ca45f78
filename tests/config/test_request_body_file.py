"""The request body file `TributaryASGIHandler.read_body` makes: the body's bytes, at position 0, and closed once
the request is answered, whether the request had no body (an in-memory file), one chunk or several."""

from __future__ import annotations

from typing import IO, Any

import pytest

from config.handler import TributaryASGIHandler
from tests.asgi_scope import http_scope


class Recording(TributaryASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[tuple[IO[bytes], bytes]] = []

    def create_request(self, scope: Any, body_file: IO[bytes]) -> Any:
        self.bodies.append((body_file, body_file.read()))
        body_file.seek(0)
        return super().create_request(scope, body_file)


@pytest.mark.parametrize(
    ("messages", "body"),
    [
        ([{"type": "http.request"}], b""),
        ([{"type": "http.request", "body": b"", "more_body": False}], b""),
        ([{"type": "http.request", "body": b"abc"}], b"abc"),
        ([{"type": "http.request", "body": b"", "more_body": True}, {"type": "http.request", "body": b"x"}], b"x"),
        ([{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.request", "body": b"c"}], b"abc"),
    ],
)
async def test_the_request_reads_its_body_and_the_file_is_closed_after_the_response(
    messages: list[dict[str, Any]], body: bytes
) -> None:
    handler = Recording()
    pending = list(messages)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = http_scope("POST", "/healthz")
    await handler(scope, receive, send)

    [(body_file, read)] = handler.bodies
    assert read == body
    assert body_file.closed
    assert sent[0]["status"] == 405  # the probe takes GET: the request was served


async def test_a_disconnect_before_the_body_ends_serves_nothing() -> None:
    handler = Recording()
    pending = [{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/healthz", "headers": [], "query_string": b""}
    await handler(scope, receive, send)

    assert handler.bodies == []
    assert sent == []
