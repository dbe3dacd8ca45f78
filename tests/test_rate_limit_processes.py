"""The issue's proof: two server processes (`python -m config.serve`, one worker each, their own ports) share one
real redis-server, and N concurrent requests from one caller against a limit of L admit exactly L, whichever process
takes them. The control runs the same without Redis: each process keeps its own budget and 2 x L get through, so
the first test would fail if the budget were not shared."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 25
REQUESTS = 80  # 40 per process: each alone could admit the whole limit
PATH = "/api/upstreams/"  # limited, and calls no upstream


@contextmanager
def server(tmp_path: Path, **env: str) -> Iterator[str]:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("UPSTREAM_", "DJANGO_", "DEMO_", "REDIS_"))}
    environment |= {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "PORT": str(port),
        "DEMO_LATENCY_MS": "0",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "RATE_LIMIT_ANONYMOUS": str(LIMIT),
        "RATE_LIMIT_PERIOD": "3600",  # one request earned back per 144 s: none during the test
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "config.serve", "--port", str(port), "--workers", "1", "--log-level", "warning"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server never answered"
            try:
                if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def burst(bases: list[str]) -> dict[str, list[int]]:
    """REQUESTS concurrent GETs, spread evenly over the servers: the statuses each server answered."""
    async with httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_connections=REQUESTS)) as client:
        urls = [bases[i % len(bases)] + PATH for i in range(REQUESTS)]
        responses = await asyncio.gather(*(client.get(url) for url in urls))
    answered: dict[str, list[int]] = {base: [] for base in bases}
    for url, response in zip(urls, responses, strict=True):
        answered[url.removesuffix(PATH)].append(response.status_code)
    return answered


def admitted(answered: dict[str, list[int]]) -> int:
    return sum(statuses.count(200) for statuses in answered.values())


@pytest.mark.e2e
def test_two_processes_sharing_redis_admit_exactly_the_limit(tmp_path: Path, redis_url: str) -> None:
    with server(tmp_path, REDIS_URL=redis_url) as first, server(tmp_path, REDIS_URL=redis_url) as second:
        answered = asyncio.run(burst([first, second]))

    statuses = [status for answers in answered.values() for status in answers]
    assert sorted(set(statuses)) == [200, 429]
    assert admitted(answered) == LIMIT
    assert statuses.count(429) == REQUESTS - LIMIT


@pytest.mark.e2e
def test_control_without_redis_each_process_admits_its_own_limit(tmp_path: Path) -> None:
    with server(tmp_path) as first, server(tmp_path) as second:
        answered = asyncio.run(burst([first, second]))

    assert {base: statuses.count(200) for base, statuses in answered.items()} == {first: LIMIT, second: LIMIT}
