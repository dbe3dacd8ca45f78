"""A misbehaving upstream the tests control: a plain ASGI app that answers each request with the next scripted
behaviour (slow headers, a trickling body, a reset mid-body, a hang, ...), served on 127.0.0.1 by uvicorn."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

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
    import random

    rng = random.Random(seed)
    behaviours = [b for b, _ in weighted]
    weights = [w for _, w in weighted]

    async def behave(receive: Receive, send: Send) -> None:
        await rng.choices(behaviours, weights)[0](receive, send)

    return behave
