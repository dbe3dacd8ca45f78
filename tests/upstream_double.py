"""A misbehaving upstream the tests control: a plain ASGI app that answers each request with the next scripted
behaviour (slow headers, a trickling body, a reset mid-body, a hang, ...), served on 127.0.0.1 by uvicorn."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
import threading
import zlib
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


# --- Raw bytes: faults an ASGI server cannot send -------------------------------------------------------------------
# `RawUpstream` answers on a bare socket, so a fault can be any bytes: a garbage status line, 1,000 headers, a body
# longer than its Content-Length, a second response nobody asked for, stacked content codings. A `RawFault` writes
# one answer to one request and says whether the connection may serve another (False: the server closes it).

RawFault = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]
SMUGGLED = b"SMUGGLED"  # in the body of responses nobody asked for: must never reach a client


def http_response(
    body: bytes,
    *,
    status: bytes = b"200 OK",
    content_type: bytes = b"application/json",
    headers: tuple[bytes, ...] = (),
) -> bytes:
    head = [b"HTTP/1.1 " + status, b"Content-Type: " + content_type, b"Content-Length: %d" % len(body), *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def raw(data: bytes, *, keep_alive: bool = True) -> RawFault:
    """Write `data` as is (whatever it is), then keep serving the connection or close it."""

    async def fault(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return keep_alive

    return fault


def raw_stall(data: bytes) -> RawFault:
    """Write `data` (a partial response), then send nothing more until the client gives up and closes."""

    async def fault(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        await reader.read()  # EOF: the client closed the connection
        return False

    return fault


def raw_twice(first: bytes, second: bytes, *, gap: float = 0.0) -> RawFault:
    """Answer, then answer again: at once (bytes left over after the response), or after `gap` seconds (bytes
    arriving on a connection the client holds idle in its pool)."""

    async def fault(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(first)
        await writer.drain()
        if gap:
            await asyncio.sleep(gap)
        writer.write(second)
        await writer.drain()
        return True

    return fault


def raw_reset(data: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{") -> RawFault:
    """Write `data`, then reset the connection (RST, not FIN: SO_LINGER 0)."""

    async def fault(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return False

    return fault


def gzip_bomb(decoded_bytes: int, *, layers: int = 2) -> bytes:
    """`decoded_bytes` zeros, gzipped `layers` times (1 GiB in two layers is about 1.8 KB), built in bounded memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    step = b"\0" * (1 << 20)
    parts = [
        compressor.compress(step[: min(len(step), decoded_bytes - done)]) for done in range(0, decoded_bytes, len(step))
    ]
    data = b"".join(parts) + compressor.flush()
    for _ in range(layers - 1):
        data = gzip.compress(data, 9)
    return data


def raw_faults(*, bomb_bytes: int) -> dict[str, RawFault]:
    """Every protocol-level fault by name; the gzip bomb decodes to `bomb_bytes`."""
    ok = orjson.dumps(OK_BODY)
    bomb = gzip_bomb(bomb_bytes)
    deep = 100_000
    return {
        "ok": raw(http_response(ok)),
        "garbage_status_line": raw(b"HTTP/1.1 2OO OKAY\r\nContent-Length: 2\r\n\r\n{}", keep_alive=False),
        "not_http": raw(b"\x00\xffhello, this is not HTTP\r\n\r\n", keep_alive=False),
        "1000_headers": raw(http_response(ok, headers=tuple(b"X-Filler-%d: x" % i for i in range(1000)))),
        "200kb_header": raw(http_response(ok, headers=(b"X-Big: " + b"a" * 200_000,))),
        "short_content_length": raw(http_response(ok)[: -len(ok)] + ok + b' "and more body than declared"'),
        # The second answer follows the first at once. Sent later, it can cross the client's next request on the
        # wire, and then no HTTP/1.1 client can tell it from the answer to that request: tests of the idle case
        # send requests one at a time (tests/upstreams, make bench-hostile).
        "answers_twice": raw_twice(http_response(ok), http_response(ok.replace(b'"ok"', b'"%s"' % SMUGGLED))),
        "gzip_gzip_bomb": raw(http_response(bomb, headers=(b"Content-Encoding: gzip, gzip",))),
        "unknown_coding": raw(http_response(ok, headers=(b"Content-Encoding: x-unheard-of",))),
        "invalid_utf8": raw(http_response(ok.replace(b'"ok"', b'"\xff\xfe\xc3("'))),
        "deep_nesting": raw(http_response(b'{"items": ' + b"[" * deep + b"]" * deep + b"}")),
        "nesting_1000": raw(
            http_response(ok.replace(b'"items":', b'"items":' + b"[" * 1000).replace(b"]}", b"]" * 1001 + b"}"))
        ),
        "huge_number": raw(http_response(ok.replace(b'"latency_ms":0', b'"latency_ms":1' + b"0" * 400))),
        "bad_content_type": raw(http_response(ok, content_type=b"text/x-" + b"<script>" * 100)),
        "redirect": raw(http_response(b"{}", status=b"302 Found", headers=(b"Location: http://127.0.0.1:9/",))),
        "status_500": raw(http_response(b"{}", status=b"500 Internal Server Error")),
        "stall_mid_headers": raw_stall(b"HTTP/1.1 200 OK\r\nContent-Type: appli"),
        "stall_mid_body": raw_stall(http_response(ok)[:-10]),
        "reset_mid_body": raw_reset(),
    }


class RawUpstream:
    """An HTTP/1.1 upstream on a bare asyncio socket, in a thread of its own (its own event loop, so a test that
    blocks its loop does not stall the upstream too). Each request gets `choose()`'s fault; `requests` counts them."""

    def __init__(self, choose: Callable[[], RawFault]) -> None:
        self.choose = choose
        self.requests = 0
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> RawUpstream:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 16)

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()  # each handler then sees its connection lost and returns
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.add(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):  # our client's requests are GETs: no body
                self.requests += 1
                if not await self.choose()(reader, writer):
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # the client closed the connection, which it may do at any time
        finally:
            writer.close()
            self._writers.discard(writer)
            self._handlers.discard(handler)
