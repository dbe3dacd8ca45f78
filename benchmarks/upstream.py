"""The benchmark's upstream: a fast simulator of a slow JSON API, served by uvicorn in its own process.

The fallback of benchmarks/upstream.js (the runner prefers that non-Python simulator when `node` is installed; both
serve the same bytes). A raw ASGI app (no framework, so its own cost stays small next to the services under test):
`GET /slow_data` and `/slow_data_1` ... `/slow_data_10` answer after a fixed latency with a JSON body in
`api.serializers.SlowData`'s shape (source, message, latency_ms, N items of {id, value}: 40 items ~2.3 KB, 5 items
~0.4 KB). Bodies are encoded once per size; query strings on payload paths are ignored. `Cache-Control: no-store`
keeps Tributary's response cache out of the measurement.

`GET /__stats` returns `{"requests": N, "items": K}`, the payload requests served so far, so the runner can check how
many upstream calls each implementation really made per request. `GET /__items?n=5` switches every later payload to
5 items, so the runner changes the payload size between runs without restarting the servers under test.

    .venv/bin/python benchmarks/upstream.py --port 8101 [--latency-ms 50] [--items 40]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

ITEMS = 40
PATHS = ("slow_data", *(f"slow_data_{n}" for n in range(1, 11)))


def payload(source: str, latency_ms: float, items: int = ITEMS) -> bytes:
    """The JSON body for one path: realistic size, valid for `SlowData`."""
    return json.dumps(
        {
            "source": source,
            "message": f"Simulated payload from {source}, served after a fixed delay.",
            "latency_ms": latency_ms,
            "items": [{"id": i, "value": f"{source}-item-{i:04d}-lorem-ipsum"} for i in range(items)],
        },
        separators=(",", ":"),
    ).encode()


def _headers(body: bytes, content_type: bytes = b"application/json") -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]


class Upstream:
    """The ASGI app. One instance per process; `served` counts payload responses."""

    def __init__(self, latency_ms: float, items: int = ITEMS) -> None:
        self.latency_ms = latency_ms
        self.latency = latency_ms / 1000
        self.items = items
        self.bodies = self.encode(items)
        self.served = 0

    def encode(self, items: int) -> dict[str, bytes]:
        return {f"/{path}": payload(path, self.latency_ms, items) for path in PATHS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        path = scope["path"]
        body = self.bodies.get(path)
        if body is not None and scope["method"] == "GET":
            await asyncio.sleep(self.latency)
            self.served += 1
            await _respond(send, 200, body)
        elif path == "/__stats":
            await _respond(
                send, 200, json.dumps({"requests": self.served, "items": self.items}, separators=(",", ":")).encode()
            )
        elif path == "/__items":
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode())
            try:
                items = int(query["n"][0])
            except (KeyError, ValueError):
                items = 0
            if items < 1:
                await _respond(send, 400, b'{"detail":"n: a whole number >= 1"}')
                return
            self.items, self.bodies = items, self.encode(items)
            answer = {"items": items, "bytes": len(self.bodies["/slow_data_1"])}
            await _respond(send, 200, json.dumps(answer, separators=(",", ":")).encode())
        else:
            await _respond(send, 404, b'{"detail":"not found"}')


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _headers(body)})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="fixed delay before every payload")
    parser.add_argument("--items", type=int, default=ITEMS, help="items per payload until /__items changes it")
    args = parser.parse_args()
    fast = all(importlib.util.find_spec(name) is not None for name in ("uvloop", "httptools"))
    uvicorn.run(
        Upstream(args.latency_ms, args.items),
        host=args.host,
        port=args.port,
        loop="uvloop" if fast else "asyncio",
        http="httptools" if fast else "h11",
        backlog=4096,
        access_log=False,
        log_level="warning",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
