"""Benchmark httpx transports for Tributary's upstream clients.

httpx's built-in connection pool is reported to be slow under concurrency
(encode/httpx#3215): 100 concurrent GETs of a 50 ms upstream take 0.9-4 s with
the default transport versus ~0.1 s with ``httpx_aiohttp.AiohttpTransport``.
This script measures both on this machine so the choice is based on numbers.

It starts a loopback aiohttp upstream in a separate process (so its CPU is not
counted) that answers ``GET /item/{n}`` after ``--latency-ms`` with a ~2 KB JSON
body. For each transport it creates one shared ``httpx.AsyncClient``, does a
warm-up round, then ``--runs`` rounds of ``--requests`` concurrent GETs and
``--runs`` rounds of 10 concurrent GETs, recording wall time and client CPU time
(``time.process_time``) per round. Bodies are read but not parsed, so the numbers
reflect the transport only.

Run from the repository root:

    .venv/bin/python benchmarks/transports.py [--requests 100] [--latency-ms 50] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from httpx_aiohttp import AiohttpTransport

HOST = "127.0.0.1"
ROUND_TIMEOUT_S = 30.0
STARTUP_TIMEOUT_S = 10.0


def serve(port: int, latency_ms: float) -> None:
    """Run the fake upstream (child process entry point)."""
    from aiohttp import web

    filler = "x" * 1900

    async def item(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        await asyncio.sleep(latency_ms / 1000)
        body = json.dumps({"id": n, "name": f"item-{n}", "tags": ["a", "b", "c"], "payload": filler})
        return web.Response(body=body.encode(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/item/{n}", item)
    web.run_app(app, host=HOST, port=port, backlog=1024, access_log=None, print=None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"upstream exited early with code {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"upstream did not accept connections within {STARTUP_TIMEOUT_S} s")


@dataclass
class Result:
    transport: str
    concurrency: int
    wall_ms: list[float]
    cpu_us_per_req: list[float]


LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)
TRANSPORTS: dict[str, Callable[[], httpx.AsyncClient]] = {
    "httpx-default": lambda: httpx.AsyncClient(limits=LIMITS),
    "aiohttp": lambda: httpx.AsyncClient(transport=AiohttpTransport(limits=LIMITS)),
}


async def one_round(client: httpx.AsyncClient, base: str, n: int) -> tuple[float, float]:
    """Fire n concurrent GETs; return (wall ms, client CPU us per request)."""

    async def get(i: int) -> None:
        response = await client.get(f"{base}/item/{i}")
        response.raise_for_status()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(get(i) for i in range(n))), ROUND_TIMEOUT_S)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall * 1000, cpu * 1e6 / n


async def bench(base: str, requests: int, runs: int) -> list[Result]:
    results: list[Result] = []
    levels = sorted({requests, 10}, reverse=True)
    for name, make_client in TRANSPORTS.items():
        async with make_client() as client:
            await one_round(client, base, max(levels))  # warm-up: open the pool
            for level in levels:
                rounds = [await one_round(client, base, level) for _ in range(runs)]
                results.append(Result(name, level, [w for w, _ in rounds], [c for _, c in rounds]))
    return results


def print_table(results: list[Result]) -> None:
    print(
        f"{'transport':<14} {'conc':>5} {'median ms':>10} {'min ms':>9} {'max ms':>9}"
        f" {'cpu us/req':>11} {'default/aiohttp':>16}"
    )
    print("-" * 80)
    by_key = {(r.transport, r.concurrency): r for r in results}
    for r in sorted(results, key=lambda r: (-r.concurrency, r.transport != "httpx-default")):
        ratio = "-"
        if r.transport == "aiohttp" and ("httpx-default", r.concurrency) in by_key:
            default = by_key["httpx-default", r.concurrency]
            ratio = f"{statistics.median(default.wall_ms) / statistics.median(r.wall_ms):.2f}x"
        print(
            f"{r.transport:<14} {r.concurrency:>5} {statistics.median(r.wall_ms):>10.1f}"
            f" {min(r.wall_ms):>9.1f} {max(r.wall_ms):>9.1f}"
            f" {statistics.median(r.cpu_us_per_req):>11.0f} {ratio:>16}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="concurrent requests per round")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="upstream response delay")
    parser.add_argument("--runs", type=int, default=5, help="measured rounds per concurrency level")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve is not None:
        serve(args.serve, args.latency_ms)
        return 0

    port = free_port()
    cmd = [sys.executable, __file__, "--serve", str(port), "--latency-ms", str(args.latency_ms)]
    proc = subprocess.Popen(cmd)
    try:
        wait_until_listening(port, proc)
        results = asyncio.run(bench(f"http://{HOST}:{port}", args.requests, args.runs))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    print(
        f"{args.requests} and 10 concurrent GETs, upstream latency {args.latency_ms:g} ms, "
        f"{args.runs} runs each, max_connections={LIMITS.max_connections}"
    )
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
