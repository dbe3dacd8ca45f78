"""`TributaryASGIHandler.send_response` sends exactly what Django's `ASGIHandler.send_response` sends, message by
message, for every kind of response (its quick path covers a plain response without cookies whose body is one
chunk; the rest goes to Django's code)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse, HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse

from config.handler import TributaryASGIHandler


def plain() -> HttpResponseBase:
    return HttpResponse(b'{"a": 1}', content_type="application/json", headers={"ETag": '"x"', "X-Request-ID": "r"})


def latin1_header() -> HttpResponseBase:
    return HttpResponse(b"x", headers={"Content-Disposition": "attachment; filename=caf\xe9.txt"})


def header_set_twice_in_other_case() -> HttpResponseBase:
    response = HttpResponse(b"x")
    response["x-thing"] = "1"
    response["X-Thing"] = "2"  # replaces it; Django sends the name as last set
    return response


def no_content() -> HttpResponseBase:
    response = HttpResponse(status=204)
    del response["Content-Type"]
    return response


def empty_body() -> HttpResponseBase:
    return HttpResponse(b"")


def one_full_chunk() -> HttpResponseBase:
    return HttpResponse(b"x" * ASGIHandler.chunk_size)


def over_one_chunk() -> HttpResponseBase:
    return HttpResponse(b"x" * (ASGIHandler.chunk_size * 2 + 1))


def with_cookie() -> HttpResponseBase:
    response = HttpResponse(b"x")
    response.set_cookie("session", "abc", httponly=True)
    return response


def json() -> HttpResponseBase:
    return JsonResponse({"a": [1, 2]}, status=201)


async def _parts() -> Any:
    for part in (b"a", b"bc"):
        yield part


def streamed() -> HttpResponseBase:
    return StreamingHttpResponse(_parts())


def file() -> HttpResponseBase:
    return FileResponse(io.BytesIO(b"file body"), filename="f.txt")


class OwnItems(HttpResponse):
    def items(self) -> Any:
        return [*super().items(), ("X-Extra", "1")]


def own_items() -> HttpResponseBase:
    return OwnItems(b"x")


RESPONSES = [
    plain,
    latin1_header,
    header_set_twice_in_other_case,
    no_content,
    empty_body,
    one_full_chunk,
    over_one_chunk,
    with_cookie,
    json,
    streamed,
    file,
    own_items,
]


async def sent_by(handler_class: type[ASGIHandler], make: Callable[[], HttpResponseBase]) -> list[Any]:
    messages: list[Any] = []

    async def send(message: Any) -> None:
        messages.append(message)

    handler = handler_class.__new__(handler_class)  # send_response uses no state of the handler
    await handler.send_response(make(), send)
    return messages


@pytest.mark.parametrize("make", RESPONSES, ids=lambda make: make.__name__)
@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")  # FileResponse's
async def test_sends_what_djangos_send_response_sends(make: Callable[[], HttpResponseBase]) -> None:
    ours = await sent_by(TributaryASGIHandler, make)

    assert ours == await sent_by(ASGIHandler, make)
    assert ours[0]["type"] == "http.response.start"
    assert all(isinstance(name, bytes) and isinstance(value, bytes) for name, value in ours[0]["headers"])
