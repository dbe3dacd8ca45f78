"""A hostile upstream: a raw-socket HTTP/1.1 server on 127.0.0.1 that can send any bytes at all.

`tests/upstream_double.py` misbehaves through uvicorn, so it can only send what uvicorn lets an ASGI app send: valid
HTTP. This one answers from a plain asyncio server, so a mode can write a garbage status line, a thousand headers, a
Content-Length smaller than the body, a decompression bomb, or a second response nobody asked for on a kept-alive
connection. It runs in a thread with its own event loop, so what it costs (writing, sleeping) never shows in the
client's loop-lag or task bookkeeping.

A mode is a coroutine `(Exchange) -> bool` that answers one request; it returns True to keep the connection open for
the next request (keep-alive), False to close it. Stalling modes wait until the client hangs up (or `STALL_MAX`).
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from functools import lru_cache

import orjson

STALL_MAX = 30.0  # seconds a stalling mode waits for the client to hang up before giving up itself
OK_BODY = orjson.dumps({"source": "slow_data", "message": "ok", "latency_ms": 0, "items": [{"id": 1, "value": "v"}]})


@dataclass
class Exchange:
    """One request on one connection, and the means to answer it with any bytes."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    head: bytes  # the request line and headers, as received

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def wait_for_hang_up(self, seconds: float = STALL_MAX) -> None:
        """Sit on the connection until the client closes it: how a stalled server looks from outside."""
        with suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(seconds):
                while await self.reader.read(65536):
                    pass


Mode = Callable[[Exchange], Awaitable[bool]]


def response(
    body: bytes = OK_BODY,
    *,
    status: bytes = b"200 OK",
    headers: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = b"application/json",
    length: int | None = None,
) -> bytes:
    """A whole response as bytes; `length` overrides the Content-Length (which can then lie)."""
    lines = [b"HTTP/1.1 " + status, b"Content-Type: " + content_type]
    lines += [name + b": " + value for name, value in headers or []]
    lines.append(b"Content-Length: " + str(len(body) if length is None else length).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def answer(data: bytes, *, keep_alive: bool = True) -> Mode:
    """Write exactly these bytes; keep the connection open afterwards (or close it)."""

    async def mode(exchange: Exchange) -> bool:
        await exchange.send(data)
        return keep_alive

    return mode


def ok(body: bytes = OK_BODY) -> Mode:
    return answer(response(body))


def answer_twice(first: bytes, second: bytes, *, gap: float = 0.05) -> Mode:
    """A valid response, then (after `gap` seconds, or at once with gap=0) more bytes nobody asked for."""

    async def mode(exchange: Exchange) -> bool:
        if gap:
            await exchange.send(first)
            await asyncio.sleep(gap)
            await exchange.send(second)
        else:
            await exchange.send(first + second)
        return True

    return mode


def stall_after(data: bytes) -> Mode:
    """Write `data` (part of a response), then stall until the client gives up."""

    async def mode(exchange: Exchange) -> bool:
        await exchange.send(data)
        await exchange.wait_for_hang_up()
        return False

    return mode


def close_after(data: bytes) -> Mode:
    """Write `data`, then close the connection cleanly (FIN), whatever the response promised."""

    async def mode(exchange: Exchange) -> bool:
        await exchange.send(data)
        return False

    return mode


# -- bodies ------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def zeros_gzip(size: int) -> bytes:
    """`size` zero bytes, gzipped (about size/1000 bytes), built incrementally so the zeros never exist at once."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    out = bytearray()
    for _ in range(size >> 20):
        out += compressor.compress(block)
    out += compressor.compress(bytes(size & ((1 << 20) - 1)))
    out += compressor.flush()
    return bytes(out)


@lru_cache(maxsize=4)
def gzip_of_gzip_bomb(size: int) -> bytes:
    """`size` zeros compressed twice: a few KB on the wire (1 GiB -> ~2 KB)."""
    return gzip.compress(zeros_gzip(size), 9)


def deep_nesting(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# -- watching the client's side ---------------------------------------------------------------------------------


@dataclass
class Watched:
    """What a block of client code cost: the longest the event loop was held, and the memory it allocated."""

    max_lag: float = 0.0  # seconds of this thread's CPU time between two ticks of a 5 ms ticker
    max_gap: float = 0.0  # the same gap in wall-clock time (for messages: a busy machine stretches it)
    memory: int = 0  # peak bytes allocated (tracemalloc) above what was allocated when the watch started


@asynccontextmanager
async def watch() -> AsyncIterator[Watched]:
    """Watch the event loop and memory while the block runs (the hostile upstream runs in another thread, so its
    own work does not count).

    The loop-lag probe measures CPU time, not wall time, between ticks of `asyncio.sleep(0.005)`: a decompression
    bomb decoded on the loop holds it with computation, which shows; the machine running other processes does not,
    nor does the cyclic garbage collector (disabled while watching)."""
    watched = Watched()
    # The cyclic GC's pauses scale with the whole test process's heap (tens of ms late in a full run), not with the
    # code under watch: collect now, and not during the block.
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]

    last = [time.thread_time(), time.monotonic()]

    def tick() -> None:
        cpu, wall = time.thread_time(), time.monotonic()
        watched.max_lag = max(watched.max_lag, cpu - last[0])
        watched.max_gap = max(watched.max_gap, wall - last[1] - 0.005)
        last[:] = cpu, wall

    async def probe() -> None:
        while True:
            await asyncio.sleep(0.005)
            tick()

    ticker = asyncio.create_task(probe())
    await asyncio.sleep(0)  # the probe's first tick starts before the block
    try:
        yield watched
    finally:
        tick()  # the block may have held the loop right up to its end, with no tick since
        ticker.cancel()
        with suppress(asyncio.CancelledError):
            await ticker
        watched.memory = tracemalloc.get_traced_memory()[1] - baseline
        if not was_tracing:
            tracemalloc.stop()
        if gc_was_enabled:
            gc.enable()


# -- the server ----------------------------------------------------------------------------------------------------


@dataclass
class HostileUpstream:
    """The server's state, shared with the test thread: the current mode and what happened."""

    mode: Mode = field(default_factory=ok)
    requests: int = 0  # request heads received
    connections: int = 0  # connections accepted
    in_flight: int = 0  # requests whose answer has not finished (a stalling mode counts until the client hangs up)
    open_connections: int = 0
    port: int = 0
    modes: list[Mode] = field(default_factory=list)  # used first, one per request, before `mode`
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)

    def reset(self, mode: Mode | None = None) -> None:
        self.mode = mode or ok()
        self.modes = []
        self.requests = self.connections = 0

    def then(self, *modes: Mode) -> HostileUpstream:
        self.modes.extend(modes)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                self.requests += 1
                mode = self.modes.pop(0) if self.modes else self.mode
                self.in_flight += 1
                try:
                    keep = await mode(Exchange(reader, writer, head))
                except ConnectionError:
                    keep = False
                finally:
                    self.in_flight -= 1
                if not keep:
                    return
        finally:
            self.open_connections -= 1
            self._writers.discard(writer)
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()


@contextmanager
def hostile_upstream() -> Iterator[HostileUpstream]:
    """Start a hostile upstream on 127.0.0.1 (a free port) in a daemon thread with its own event loop."""
    upstream = HostileUpstream()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Future[None] | None = None

    async def main() -> None:
        nonlocal stop
        stop = loop.create_future()
        server = await asyncio.start_server(upstream._serve, "127.0.0.1", 0, limit=1 << 20)
        upstream.port = server.sockets[0].getsockname()[1]
        started.set()
        async with server:
            await stop
            # Hang up on every client still connected, so each handler ends by itself (a cancelled handler task is
            # logged as an error by asyncio's stream protocol), then stop whatever is left.
            for writer in list(upstream._writers):
                writer.transport.abort()
            handlers = asyncio.all_tasks() - {asyncio.current_task()}
            _, pending = await asyncio.wait(handlers, timeout=5) if handlers else (set(), set())
            for task in pending:
                task.cancel()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("hostile upstream did not start")
    try:
        yield upstream
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(timeout=10)
        loop.close()
