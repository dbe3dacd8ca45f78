"""Soak, from outside: the real service under uvicorn, its upstreams a raw-socket upstream on 127.0.0.1
(tests/hostile_upstream.py) answering each request with a random protocol-level fault, and 50 client connections.

What the in-process soak (tests/api/test_soak.py) cannot see: the service's own process (its memory, from /proc; its
log, where a 500 leaves its traceback) and real HTTP on both sides. Bounded in count (REQUESTS) and in time (a
request that takes longer than REQUEST_LIMIT is a hang and fails the test); loopback only.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.test_soak import documented_codes, settled, soak_path
from tests.e2e.conftest import UPSTREAM_NAMES, _Probe, _running, _subprocess_env, _wait_until_ready
from tests.hostile_upstream import HostileUpstream, hostile_upstream
from tests.servers import free_port
from tests.upstream_double import SMUGGLED, drawing, hostile_faults

pytestmark = pytest.mark.e2e

REQUESTS = 500
CONNECTIONS = 50
REQUEST_LIMIT = 30.0  # seconds: far above any documented budget (deadline 3 s); longer is a hang
BOMB_BYTES = 256 << 20  # decoded size of the gzip,gzip bomb; the body limit is 1 MB
MIX = {
    "ok": 60,
    "garbage_status_line": 4,
    "not_http": 2,
    "1000_headers": 4,
    "200kb_header": 4,
    "short_content_length": 4,
    "answers_twice": 4,
    "gzip_gzip_bomb": 3,
    "unknown_coding": 2,
    "invalid_utf8": 2,
    "deep_nesting": 2,
    "nesting_1000": 2,
    "huge_number": 2,
    "bad_content_type": 2,
    "redirect": 2,
    "status_500": 3,
    "stall_mid_headers": 2,
    "stall_mid_body": 2,
    "reset_mid_body": 4,
}


@dataclass
class Soaked:
    url: str
    pid: int
    log: Path
    upstream: HostileUpstream
    drawn: Counter[str]

    def memory(self) -> dict[str, int]:
        """The service's VmRSS and VmHWM (its peak RSS since start), in bytes."""
        lines = Path(f"/proc/{self.pid}/status").read_text().splitlines()
        fields = (line.split(":", 1) for line in lines)
        return {k: int(v.split()[0]) * 1024 for k, v in fields if k in ("VmRSS", "VmHWM")}

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def soaked(tmp_path: Path) -> Iterator[Soaked]:
    """uvicorn serving the service, every upstream the raw-socket upstream drawing a fault per request (seeded)."""
    drawn: Counter[str] = Counter()
    with ExitStack() as stack:
        upstream = stack.enter_context(hostile_upstream())
        upstream.reset(drawing(hostile_faults(bomb_bytes=BOMB_BYTES), MIX, seed=5, drawn=drawn))
        env = _subprocess_env(demo_url=upstream.url)
        for name in UPSTREAM_NAMES:
            prefix = f"UPSTREAM_{name.upper()}_"
            env.update({prefix + "TIMEOUT": "1", prefix + "MAX_BODY_BYTES": str(1 << 20)})
            # Faults open the circuit (they should), but the cooldown is short, so it keeps probing: the soak is
            # about what each fault does to the service, not a circuit left open for the rest of the run.
            env.update({prefix + "BREAKER_COOLDOWN": "0.2", prefix + "BREAKER_FAILURE_RATIO": "0.9"})
        env.update(AGGREGATE_DEADLINE="3", LOG_LEVEL="WARNING")
        port = free_port()
        args = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1"]
        args += ["--port", str(port), "--lifespan", "on", "--no-access-log"]
        args += ["--http", "config.http:BoundedHttpToolsProtocol"]  # as `make run` and config.serve serve it
        log = tmp_path / "service.log"
        service = stack.enter_context(_running(args, env=env, log=log))
        url = f"http://127.0.0.1:{port}"
        _wait_until_ready([_Probe("service", service, f"{url}/healthz", log)])
        yield Soaked(url, service.pid, log, upstream, drawn)


async def test_real_service_under_protocol_level_upstream_faults_never_answers_500(soaked: Soaked) -> None:
    """Every answer a documented status and code (never 500), nothing smuggled, nothing hung, no unhandled
    exception in the service's log, its peak memory far below one bomb decoded whole, and it still answers after."""
    answers: Counter[str] = Counter()
    smuggled = 0
    hung = 0
    queue = iter(range(REQUESTS))
    rss_before = soaked.memory()["VmRSS"]
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)

    async def connection(client: httpx.AsyncClient) -> None:
        nonlocal smuggled, hung
        for i in queue:
            try:
                response = await asyncio.wait_for(client.get(soaked.url + soak_path(i)), timeout=REQUEST_LIMIT)
            except TimeoutError:
                hung += 1
                continue
            code = response.json().get("code", "") if response.status_code != 200 else ""
            answers[f"{response.status_code} {code}".strip()] += 1
            smuggled += SMUGGLED in response.content
            if response.status_code != 200:
                assert response.headers["Content-Type"] == "application/problem+json", response.text

    async with httpx.AsyncClient(timeout=REQUEST_LIMIT + 5, limits=limits) as client:
        await asyncio.gather(*(connection(client) for _ in range(CONNECTIONS)))
        after = await client.get(soaked.url + "/healthz")
    memory = soaked.memory()
    left = await settled(lambda: soaked.upstream.in_flight)

    report = f"answers {dict(answers)}; faults drawn {dict(soaked.drawn)}"
    unhandled = soaked.log.read_text(errors="replace").count("Unhandled exception")
    assert not [a for a in answers if a.startswith("500")], f"{report}\nservice log:\n{soaked.log_tail()}"
    assert unhandled == 0, f"{unhandled} unhandled exceptions; {report}\nservice log:\n{soaked.log_tail()}"
    assert hung == 0, f"{hung} requests took over {REQUEST_LIMIT} s; {report}"
    assert sum(answers.values()) == REQUESTS, report
    documented = documented_codes()
    for answer in answers:
        status, _, code = answer.partition(" ")
        assert code in documented.get(int(status), set()), (answer, report)
    assert smuggled == 0, f"{smuggled} responses carried an upstream response meant for nobody; {report}"
    assert answers["200"] > REQUESTS // 5, report  # it mostly works, despite the upstream
    assert soaked.drawn.keys() == MIX.keys(), report  # every fault was tried
    growth = memory["VmHWM"] - rss_before
    assert growth < BOMB_BYTES // 2, f"peak RSS {growth / 2**20:.0f} MB over the start: a bomb was decoded whole"
    assert after.status_code == 200
    assert left == 0, f"{left} upstream requests still in flight: a stalled answer the service never gave up on"
