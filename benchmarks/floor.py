"""The floor for `make bench`: the least a Python service can do for the same aggregation (issue 12).

A bare aiohttp server (no framework) with one shared `aiohttp.ClientSession` created at start-up; each request makes
its upstream calls concurrently (`asyncio.gather`), decodes each payload with `json.loads`, validates nothing, and
encodes one JSON body with `json.dumps`. `/one` makes one call (`slow_data`), `/three` three, `/ten` ten, like the
FastAPI reference. The upstream is `UPSTREAM_URL`; the pool limit is `FLOOR_MAX_CONNECTIONS` (default 1000, the
benchmark's equal pool size for every implementation). Runs on uvloop when installed, as uvicorn does for the others.

    UPSTREAM_URL=http://127.0.0.1:8101 .venv/bin/python benchmarks/floor.py --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:8101").rstrip("/")
MAX_CONNECTIONS = int(os.environ.get("FLOOR_MAX_CONNECTIONS", "1000"))
TIMEOUT = aiohttp.ClientTimeout(total=5.0, connect=2.0)  # Tributary's defaults: 5 s per call, 2 s to connect
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def session_context(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        app[SESSION] = session
        yield


async def fetch(session: aiohttp.ClientSession, path: str) -> Any:
    async with session.get(f"{UPSTREAM_URL}/{path}") as response:
        response.raise_for_status()
        return json.loads(await response.read())


async def fetch_all(request: web.Request, count: int) -> web.Response:
    session = request.app[SESSION]
    results = await asyncio.gather(*(fetch(session, f"slow_data_{n}") for n in range(1, count + 1)))
    return web.Response(body=json.dumps({"results": results}).encode(), content_type="application/json")


async def one(request: web.Request) -> web.Response:
    data = await fetch(request.app[SESSION], "slow_data")
    return web.Response(body=json.dumps(data).encode(), content_type="application/json")


async def three(request: web.Request) -> web.Response:
    return await fetch_all(request, 3)


async def ten(request: web.Request) -> web.Response:
    return await fetch_all(request, 10)


def make_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(session_context)
    app.router.add_get("/one", one)
    app.router.add_get("/three", three)
    app.router.add_get("/ten", ten)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(make_app(), host=args.host, port=args.port, access_log=None, print=None, backlog=4096)


if __name__ == "__main__":
    main()
