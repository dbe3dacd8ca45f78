"""A misbehaving upstream the tests control: a plain ASGI app that answers each request with the next scripted
behaviour (slow headers, a trickling body, a reset mid-body, a hang, ...), served on 127.0.0.1 by uvicorn."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import orjson

from tests import hostile_upstream as hostile
from upstreams.demo import app as demo_app

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Behaviour = Callable[[Receive, Send], Awaitable[None]]

OK_BODY = {"source": "slow_data", "message": "ok", "latency_ms": 0, "items": [{"id": 1, "value": "v"}]}


async def _start(send: Send, status: int, length: int | None, headers: list[tuple[bytes, bytes]]) -> None:
    all_headers = [(b"content-type", b"application/json"), *headers]
    if length is not None:
        all_headers.append((b"content-length", str(length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})


def json(status: int = 200, body: Any = OK_BODY, *, headers: dict[str, str] | None = None) -> Behaviour:
    raw = orjson.dumps(body)
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

    async def behave(receive: Receive, send: Send) -> None:
        await _start(send, status, len(raw), extra)
        await send({"type": "http.response.body", "body": raw})

    return behave


def raw_body(body: bytes, *, content_type: str = "application/json") -> Behaviour:
    async def behave(receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return behave


async def _pause(receive: Receive, seconds: float) -> bool:
    """Sleep, unless the client goes away first (then True): a real server stops working for a closed socket."""
    try:
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True


def slow_headers(seconds: float, then: Behaviour | None = None) -> Behaviour:
    async def behave(receive: Receive, send: Send) -> None:
        if not await _pause(receive, seconds):
            await (then or json())(receive, send)

    return behave


def trickle(*, chunks: int = 100, interval: float = 0.05) -> Behaviour:
    """Headers at once, then a body that never stops arriving slowly (each read succeeds in time)."""

    async def behave(receive: Receive, send: Send) -> None:
        await _start(send, 200, None, [])
        await send({"type": "http.response.body", "body": b'{"items": [', "more_body": True})
        for _ in range(chunks):
            if await _pause(receive, interval):
                return
            await send({"type": "http.response.body", "body": b'"x",', "more_body": True})
        await send({"type": "http.response.body", "body": b'"end"]}'})

    return behave


class InjectedReset(RuntimeError):
    pass


def reset() -> Behaviour:
    async def behave(receive: Receive, send: Send) -> None:
        await _start(send, 200, 1000, [])
        await send({"type": "http.response.body", "body": b'{"items": [1, 2', "more_body": True})
        raise InjectedReset("dropping the connection mid-body, on purpose")

    return behave


def hang() -> Behaviour:
    """Never answer: wait until the client goes away."""

    async def behave(receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    return behave


def huge(size: int) -> Behaviour:
    async def behave(receive: Receive, send: Send) -> None:
        await _start(send, 200, None, [])  # no Content-Length: the limit must cut the stream
        chunk = b" " * 65536
        for _ in range(size // len(chunk)):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"[]"})

    return behave


class ScriptedUpstream:
    def __init__(self) -> None:
        self.script: deque[Behaviour] = deque()
        self.default: Behaviour = json()
        self.requests = 0
        self.in_flight = 0
        self.disconnects = 0
        self.headers: list[dict[str, str]] = []

    def reset(self) -> None:
        self.script.clear()
        self.default = json()
        self.requests = 0
        self.disconnects = 0
        self.headers.clear()

    def then(self, *behaviours: Behaviour) -> ScriptedUpstream:
        self.script.extend(behaviours)
        return self

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        behaviour = self.script.popleft() if self.script else self.default
        self.requests += 1
        self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        self.in_flight += 1
        try:
            await behaviour(self._watching(receive), send)
        finally:
            self.in_flight -= 1

    def _watching(self, receive: Receive) -> Receive:
        async def wrapped() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnects += 1
            return message

        return wrapped


def random_mix(seed: int, weighted: list[tuple[Behaviour, int]]) -> Behaviour:
    """Each request draws its behaviour at random (seeded: the same run every time)."""
    rng = random.Random(seed)
    behaviours = [b for b, _ in weighted]
    weights = [w for _, w in weighted]

    async def behave(receive: Receive, send: Send) -> None:
        await rng.choices(behaviours, weights)[0](receive, send)

    return behave


# --- Raw bytes: faults an ASGI server cannot send --------------------------------------------------------------------
# Served by tests/hostile_upstream.py's raw-socket server: a fault is one of its modes (one answer to one request).
# The soaks (tests/api/test_soak.py, tests/e2e/test_soak_uvicorn.py) and `make bench-hostile` draw from this table.

SMUGGLED = b"SMUGGLED"  # in the body of responses nobody asked for: must never reach a client


def reset_after(data: bytes) -> hostile.Mode:
    """Write `data`, then reset the connection (RST, not FIN: SO_LINGER 0)."""

    async def mode(exchange: hostile.Exchange) -> bool:
        await exchange.send(data)
        sock = exchange.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        exchange.writer.transport.abort()
        return False

    return mode


def as_demo(*, then: bytes = b"") -> hostile.Mode:
    """Answer what the demo upstreams would answer to the request's path (so every endpoint can be soaked), then
    write `then` on the same connection (bytes nobody asked for)."""

    async def mode(exchange: hostile.Exchange) -> bool:
        target = exchange.head.split(b" ", 2)[1].decode("latin-1")
        path, _, query = target.partition("?")
        resolved = demo_app._resolve(path)
        if resolved is None:
            status, body = 404, b'{"error": "not_found"}'
        else:
            route, params = resolved
            answer = route.handler(demo_app._Call(params, dict(parse_qsl(query)), 0.0))
            status, body = answer.status, answer.body
        await exchange.send(
            hostile.response(body, status=b"%d %s" % (status, HTTPStatus(status).phrase.encode())) + then
        )
        return True

    return mode


def hostile_faults(*, bomb_bytes: int) -> dict[str, hostile.Mode]:
    """Every protocol-level fault by name; the gzip,gzip bomb decodes to `bomb_bytes`."""
    ok = hostile.OK_BODY
    response = hostile.response
    deep = 100_000
    return {
        "ok": as_demo(),
        "garbage_status_line": hostile.close_after(b"HTTP/1.1 2OO OKAY\r\nContent-Length: 2\r\n\r\n{}"),
        "not_http": hostile.close_after(b"\x00\xffhello, this is not HTTP\r\n\r\n"),
        "1000_headers": hostile.answer(response(headers=[(b"X-Filler-%d" % i, b"x") for i in range(1000)])),
        "200kb_header": hostile.answer(response(headers=[(b"X-Big", b"a" * 200_000)])),
        "short_content_length": as_demo(then=b' "and more body than its Content-Length"'),
        # The second answer follows the first at once. Sent later, it can cross the client's next request on the
        # wire, and then no HTTP/1.1 client can tell it from the answer to that request: tests of the idle case
        # send requests one at a time (tests/upstreams, make bench-hostile).
        "answers_twice": as_demo(then=response(ok.replace(b'"ok"', b'"%s"' % SMUGGLED))),
        "gzip_gzip_bomb": hostile.answer(
            response(hostile.gzip_of_gzip_bomb(bomb_bytes), headers=[(b"Content-Encoding", b"gzip, gzip")])
        ),
        "unknown_coding": hostile.answer(response(headers=[(b"Content-Encoding", b"x-unheard-of")])),
        "invalid_utf8": hostile.answer(response(ok.replace(b'"ok"', b'"\xff\xfe\xc3("'))),
        "deep_nesting": hostile.answer(response(b'{"items": ' + hostile.deep_nesting(deep) + b"}")),
        "nesting_1000": hostile.answer(
            response(ok.replace(b'"items":', b'"items":' + b"[" * 1000).replace(b"]}", b"]" * 1001 + b"}"))
        ),
        "huge_number": hostile.answer(response(ok.replace(b'"latency_ms":0', b'"latency_ms":1' + b"0" * 400))),
        "bad_content_type": hostile.answer(response(content_type=b"text/x-" + b"<script>" * 100)),
        "redirect": hostile.answer(
            response(b"{}", status=b"302 Found", headers=[(b"Location", b"http://127.0.0.1:9/")])
        ),
        "status_500": hostile.answer(response(b"{}", status=b"500 Internal Server Error")),
        "stall_mid_headers": hostile.stall_after(b"HTTP/1.1 200 OK\r\nContent-Type: appli"),
        "stall_mid_body": hostile.stall_after(response()[:-10]),
        "reset_mid_body": reset_after(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"),
    }


def drawing(
    faults: dict[str, hostile.Mode], weights: dict[str, int], *, seed: int, drawn: Counter[str]
) -> hostile.Mode:
    """A mode that answers each request with a fault drawn at random (seeded), counting the draws in `drawn`."""
    rng = random.Random(seed)
    names, chances = list(weights), list(weights.values())

    async def mode(exchange: hostile.Exchange) -> bool:
        name = rng.choices(names, chances)[0]
        drawn[name] += 1
        return await faults[name](exchange)

    return mode
