"""A bounded Python load generator: `make bench`'s fallback when wrk is not installed.

Like `wrk -c N -d D`: N connections (aiohttp, keep-alive), each sending its next GET as soon as the previous answer
arrives, for D seconds. Prints one JSON object: requests answered, seconds, requests/s, p50 and p99 latency (ms) and
errors by kind (non-2xx/3xx answers, socket errors, timeouts). The whole run is bounded by D plus the request timeout.
It is slower than wrk, so on a fast service it may measure itself: the runner says which generator it used.

    .venv/bin/python benchmarks/loadgen.py http://127.0.0.1:8000/api/multiple-external-data/ -c 64 -d 5 \
        [-H 'Authorization: Bearer <key>']
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
from typing import Any

import aiohttp


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def connection(
    session: aiohttp.ClientSession, url: str, stop_at: float, latencies: list[float]
) -> collections.Counter[str]:
    """One connection's loop; returns its errors by kind."""
    errors = collections.Counter[str]()
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        try:
            async with session.get(url) as response:
                await response.read()
        except TimeoutError:
            errors["timeout"] += 1  # no answer: no latency either (as wrk)
            continue
        except aiohttp.ClientError:
            errors["socket"] += 1
            continue
        latencies.append(time.perf_counter() - started)
        if response.status >= 400:
            errors["non-2xx"] += 1
    return errors


async def run(
    url: str, *, connections: int, duration: float, timeout: float, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout, headers=headers) as session:
        started = time.perf_counter()
        stop_at = started + duration
        tasks = [connection(session, url, stop_at, latencies) for _ in range(connections)]
        errors = sum(await asyncio.wait_for(asyncio.gather(*tasks), duration + timeout + 5), collections.Counter[str]())
        seconds = time.perf_counter() - started
    latencies.sort()
    requests = len(latencies)  # answered, whatever the status (as wrk)
    return {
        "requests": requests,
        "seconds": seconds,
        "rps": requests / seconds,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": errors.total(),
        "error_kinds": dict(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("-c", "--connections", type=int, default=8)
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    parser.add_argument("-H", "--header", action="append", default=[], help="'Name: value' on every request (as wrk)")
    args = parser.parse_args()
    headers = dict(header.split(": ", 1) for header in args.header)
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    result = runner(
        run(args.url, connections=args.connections, duration=args.duration, timeout=args.timeout, headers=headers)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
