"""The FastAPI reference for `make bench`: the same aggregation written the way a FastAPI service would be.

One shared `httpx.AsyncClient` on the same transport as Tributary (httpx-aiohttp) with `REFERENCE_MAX_CONNECTIONS`
pooled connections (default 100, Tributary's default; `make bench` sets the same pool size for every
implementation), created in the lifespan; `asyncio.gather` of the calls; pydantic validation of every payload
(`model_validate_json`, the fast path a FastAPI author would use); the response model serialised by FastAPI.
`/one` makes one upstream call (`slow_data`), `/three` three, `/ten` ten. The upstream is `UPSTREAM_URL`.

    UPSTREAM_URL=http://127.0.0.1:8101 .venv/bin/python -m uvicorn benchmarks.reference_fastapi:app
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Request
from httpx_aiohttp import AiohttpTransport
from pydantic import BaseModel, Field

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:8101").rstrip("/")
# Tributary's defaults (upstreams/config.py): 100 pooled connections, 5 s per call, 2 s to connect.
MAX_CONNECTIONS = int(os.environ.get("REFERENCE_MAX_CONNECTIONS", "100"))
LIMITS = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
TIMEOUT = httpx.Timeout(5.0, connect=2.0)


class SlowItem(BaseModel):
    id: int
    value: str


class SlowData(BaseModel):
    source: str
    message: str
    latency_ms: float = Field(ge=0)
    items: list[SlowItem]


class Results(BaseModel):
    results: list[SlowData]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    transport = AiohttpTransport(limits=LIMITS)
    async with httpx.AsyncClient(base_url=UPSTREAM_URL, transport=transport, timeout=TIMEOUT) as client:
        app.state.client = client
        yield


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


def get_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.client
    return client


Client = Annotated[httpx.AsyncClient, Depends(get_client)]


async def fetch(client: httpx.AsyncClient, path: str) -> SlowData:
    response = await client.get(path)
    response.raise_for_status()
    return SlowData.model_validate_json(response.content)


async def fetch_all(client: httpx.AsyncClient, count: int) -> Results:
    results = await asyncio.gather(*(fetch(client, f"/slow_data_{n}") for n in range(1, count + 1)))
    return Results(results=list(results))


@app.get("/one")
async def one(client: Client) -> SlowData:
    return await fetch(client, "/slow_data")


@app.get("/three")
async def three(client: Client) -> Results:
    return await fetch_all(client, 3)


@app.get("/ten")
async def ten(client: Client) -> Results:
    return await fetch_all(client, 10)
