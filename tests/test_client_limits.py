"""What a client may send, against the real server (`python -m config.serve`, uvicorn on 127.0.0.1): a body over
settings.MAX_REQUEST_BODY_BYTES is refused with 413 without being read, a request head over the limit with 431,
and a client too slow to send its request is cut off with 408 (config/handler.py, config/http.py).

"Not read" is measured, not assumed: the server's `rchar` (/proc/<pid>/io: bytes it read from any file or socket)
grows by far less than the client offered, and its memory stays put.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from tests.servers import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
REQUEST_TIMEOUT = 2.0  # the server's REQUEST_READ_TIMEOUT here (default: 10 s)
MB = 1024 * 1024
BODY_LIMIT = 1024


@dataclass(frozen=True)
class Server:
    port: int
    pid: int

    def counter(self, name: str) -> int:
        """A /proc counter of the server process: `rchar` (bytes read) or `VmRSS` (resident memory, bytes)."""
        if name == "rchar":
            text = Path(f"/proc/{self.pid}/io").read_text()
        else:
            text = Path(f"/proc/{self.pid}/status").read_text()
        line = next(line for line in text.splitlines() if line.startswith(name + ":"))
        value = int(line.split()[1])
        return value * 1024 if name == "VmRSS" else value

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def healthy(self) -> bool:
        return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5).status_code == 200


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPSTREAM_", "DJANGO_", "DEMO_", "REDIS_"))}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings.local", "DEMO_LATENCY_MS": "0"}
    env |= {"REQUEST_READ_TIMEOUT": str(REQUEST_TIMEOUT)}
    env |= {"MAX_REQUEST_BODY_BYTES": str(BODY_LIMIT)}  # under the first 64 KiB chunk the body tests send
    args = ["--port", str(port), "--log-level", "error"]
    process = subprocess.Popen(
        [sys.executable, "-m", "config.serve", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the server exited at start-up"
            assert time.monotonic() < deadline, "the server never answered"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield Server(port=port, pid=process.pid)
    finally:
        process.terminate()
        process.wait(timeout=20)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length or chunked): status, headers (lower-case names), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock, data)
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    if headers.get("transfer-encoding") == "chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            rest += _recv(sock, rest)
        body = b""
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                return int(status_line.split()[1]), headers, body
            body, rest = body + rest[:size], rest[size + 2 :]
    while len(rest) < int(headers["content-length"]):
        rest += _recv(sock, rest)
    return int(status_line.split()[1]), headers, rest


def _recv(sock: socket.socket, so_far: bytes) -> bytes:
    chunk = sock.recv(65536)
    assert chunk, f"connection closed in the middle of a response: {so_far!r}"
    return chunk


def send_until_cut_off(sock: socket.socket, total: int, piece: bytes) -> int:
    """Keep sending `piece` until `total` bytes are sent or the server closes the connection; returns bytes sent."""
    sent = 0
    sock.settimeout(10)  # a server that neither reads nor closes fails the test here, bounded
    try:
        while sent < total:
            sent += sock.send(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def assert_problem(status: int, headers: dict[str, str], body: bytes, expected: int, code: str) -> None:
    assert status == expected, body
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = orjson.loads(body)
    assert problem["status"] == expected
    assert problem["code"] == code
    assert problem["type"] == f"urn:tributary:problem:{code}"
    assert problem["request_id"] == headers["x-request-id"]


# Bodies: refused before they are read.


def test_a_300_mb_declared_body_is_answered_413_without_being_read(server: Server) -> None:
    read_before, rss_before = server.counter("rchar"), server.counter("VmRSS")
    with server.connect() as sock:
        sock.sendall(b"POST /api/products/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 314572800\r\n\r\n")
        sock.sendall(b"x" * 65536)

        status, headers, body = read_response(sock)  # answered while the client is still sending
        sent = send_until_cut_off(sock, 300 * MB, b"x" * 65536)

    assert_problem(status, headers, body, 413, "request_body_too_large")
    assert sent < 300 * MB  # the server closed the connection instead of taking the rest
    assert server.counter("rchar") - read_before < 16 * MB
    assert server.counter("VmRSS") - rss_before < 16 * MB
    assert server.healthy()


def test_a_chunked_body_is_read_only_up_to_the_limit(server: Server) -> None:
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"  # 64 KiB chunks
    read_before = server.counter("rchar")
    with server.connect() as sock:
        sock.sendall(b"POST /api/products/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk)

        status, headers, body = read_response(sock)
        sent = send_until_cut_off(sock, 300 * MB, chunk * 4)

    assert_problem(status, headers, body, 413, "request_body_too_large")
    assert sent < 300 * MB
    assert server.counter("rchar") - read_before < 16 * MB
    assert server.healthy()


# Heads: bounded in size.


@pytest.mark.parametrize("end", [b"", b"\r\n\r\n"], ids=["still-arriving", "whole-in-one-read"])
def test_a_request_head_over_the_limit_is_answered_431_and_one_within_it_is_served(server: Server, end: bytes) -> None:
    padding = {"X-Padding": "a" * 8000}  # half the limit: a large cookie or token fits
    assert httpx.get(f"http://127.0.0.1:{server.port}/healthz", headers=padding, timeout=5).status_code == 200

    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (32 * 1024) + end)

        status, headers, body = read_response(sock)

        assert sock.recv(1) == b""  # and the connection is closed
    assert_problem(status, headers, body, 431, "request_header_too_large")


def test_a_100_mb_header_is_cut_off_and_the_server_memory_stays_bounded(server: Server) -> None:
    rss_before = server.counter("VmRSS")
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")

        sent = send_until_cut_off(sock, 100 * MB, b"a" * 65536)

    assert sent < 100 * MB
    assert server.counter("VmRSS") - rss_before < 16 * MB
    assert server.healthy()


# Slow clients: a request must arrive within the request timeout.


async def slow_client(port: int, *, interval: float, budget: float) -> tuple[bytes, float]:
    """Sends a request head a byte every `interval` s until the server closes; returns what it answered and when."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 10_000
    answer = b""
    try:
        for byte in head:
            if time.monotonic() - started > budget:
                break
            writer.write(bytes([byte]))
            try:
                answer = await asyncio.wait_for(reader.read(65536), timeout=interval)
            except TimeoutError:
                continue
            break  # an answer, or the end of the connection
    except ConnectionError:
        pass
    finally:
        writer.close()
    return answer, time.monotonic() - started


async def test_200_clients_sending_a_header_byte_at_a_time_are_cut_off_with_408(server: Server) -> None:
    budget = REQUEST_TIMEOUT * 5  # bounded: without a request timeout, every client gives up here instead

    slow = [asyncio.create_task(slow_client(server.port, interval=0.5, budget=budget)) for _ in range(200)]
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(timeout=5) as client:  # the service keeps serving others meanwhile
        during = await client.get(f"http://127.0.0.1:{server.port}/healthz")
    results = await asyncio.gather(*slow)

    assert during.status_code == 200
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer, _ in results), {a[:40] for a, _ in results}
    assert all(b"request_timeout" in answer for answer, _ in results)
    assert max(elapsed for _, elapsed in results) < budget


async def test_a_connection_that_sends_nothing_is_closed_but_an_idle_keep_alive_one_is_not_cut_short(
    server: Server,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        data = await asyncio.wait_for(reader.read(), timeout=REQUEST_TIMEOUT * 5)  # EOF when the server closes
    finally:
        writer.close()
    # Between requests only uvicorn's keep-alive timeout (5 s) applies, not the request timeout.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
        first = await client.get("/healthz")
        await asyncio.sleep(REQUEST_TIMEOUT * 1.5)
        second = await client.get("/healthz")

    assert data == b""  # closed without a word: no request was started
    assert (first.status_code, second.status_code) == (200, 200)


def test_the_make_run_uvicorn_command_bounds_request_heads_too() -> None:
    """`make run` starts plain uvicorn: its command line must name our protocol, or heads are unbounded again."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("\nrun:") :].split("\n\n", 1)[0]
    command = next(line.strip() for line in recipe.splitlines() if "/uvicorn " in line).split()
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", *command[1:]]
    command = [{"$(HOST)": "127.0.0.1", "$(PORT)": str(port)}.get(arg, arg) for arg in command]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPSTREAM_", "DJANGO_", "DEMO_", "REDIS_"))}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings.local", "DEMO_LATENCY_MS": "0"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"{command} exited at start-up"
            assert time.monotonic() < deadline, "the server never answered"
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (32 * 1024) + b"\r\n\r\n")

            status, headers, body = read_response(sock)
    finally:
        process.terminate()
        process.wait(timeout=20)

    assert_problem(status, headers, body, 431, "request_header_too_large")
