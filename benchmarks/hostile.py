"""`make bench-hostile`: what a hostile upstream and hostile clients do to the service, measured from outside.

The service runs as production runs it (`python -m config.serve --workers 1`: uvicorn in one process, so the pid is
the worker) from a checkout of your choice (`--tree`, default this one; e.g. `git worktree add /tmp/before 5ed58ec`
to measure the code before issue 7), with every upstream pointed at a raw-socket upstream on 127.0.0.1 that can send
any bytes (tests/hostile_upstream.py; the faults are tests/upstream_double.py's `hostile_faults`). For each of issue
7's findings where it applies it prints what happened:

    1  gzip,gzip bomb (~1.8 KB decoding to 1 GiB): worker RSS before/peak, loop freeze (the longest /healthz answer
       of a concurrent poller), status and code
    2  protocol faults one by one (status and code, and what the next request on the pool got); then a load of
       `--connections` connections for `--load-seconds` with random upstream faults: count by status and code
    3  a second response on a kept-alive connection: does a later request get it, and is it cached
    4  clients: a 300 MB request body, declared only and sent (time to the answer, RSS), one 100 MB header (RSS, loop
       freeze), 200 connections sending a header a byte a second (how many still open after `--slow-seconds`)
    5  OPTIONS /api/docs/ with DJANGO_DEBUG off and on
    7  an upstream's Content-Type: is any of it echoed in the response

Every load is bounded in count and time, on loopback only. A watchdog samples the worker's RSS every 20 ms and kills
it past `--rss-limit-mb` (default 6144): the old code can take several GB for one bomb; a killed worker is reported as
such. It reports; it does not judge (exit status 0 unless something could not be measured).

    .venv/bin/python benchmarks/hostile.py [--tree /tmp/before] [--load-seconds 20] [--only 1,2,3,4,5,7]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests import hostile_upstream as hostile  # noqa: E402
from tests.hostile_upstream import HostileUpstream, hostile_upstream  # noqa: E402
from tests.servers import free_port  # noqa: E402
from tests.upstream_double import SMUGGLED, drawing, hostile_faults  # noqa: E402

# Not upstreams.declared: the tree under test may predate it (5ed58ec does); these five are in every version.
UPSTREAM_NAMES = ("slow", "catalog", "inventory", "reviews", "fx")
GIB = 1 << 30
MB = 1 << 20
SCRIPT = b"<script>alert(1)</script>"


# --- The service under test -------------------------------------------------------------------------------------


@dataclass
class Watchdog:
    """Samples a process's RSS every 20 ms and kills it past `limit` bytes; `peak` also reads the kernel's exact
    high-water mark (VmHWM, reset by `reset_peak` through /proc/<pid>/clear_refs), so a spike between samples counts."""

    pid: int
    limit: int
    sampled: int = 0
    killed: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            rss = memory(self.pid).get("VmRSS", 0)
            self.sampled = max(self.sampled, rss)
            if rss > self.limit and not self.killed:
                self.killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)

    @property
    def peak(self) -> int:
        return max(self.sampled, memory(self.pid).get("VmHWM", 0))

    def reset_peak(self) -> int:
        """Start a new peak from the current RSS (returned)."""
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # 5: reset the peak RSS (proc(5))
        self.sampled = memory(self.pid).get("VmRSS", 0)
        return self.sampled

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of `pid` in bytes; empty once the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in lines) if k in ("VmRSS", "VmHWM")}


@dataclass
class Service:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    watchdog: Watchdog
    log: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def rss(self) -> int:
        return memory(self.process.pid).get("VmRSS", 0)

    def unhandled(self) -> int:
        """How many requests the service logged as unhandled exceptions (its 500s, seen from inside)."""
        return self.log.read_text(errors="replace").count("Unhandled exception")


@contextlib.contextmanager
def service(args: argparse.Namespace, upstream: HostileUpstream, **env: str) -> Iterator[Service]:
    """`python -m config.serve` from `args.tree` (local settings, demo off), every upstream at `upstream`."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("UPSTREAM_", "DEMO_", "DJANGO_"))}
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DEMO_UPSTREAMS="false",
        PYTHONPATH=str(args.tree),
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
        **{f"UPSTREAM_{name.upper()}_URL": f"{upstream.url}/{name}" for name in UPSTREAM_NAMES},
        **env,
    )
    log = Path(tempfile.mkstemp(prefix="hostile-service-", suffix=".log")[1])
    # The production entry point (README): one worker runs in this process, with whatever protocol the tree configures.
    command = [sys.executable, "-m", "config.serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--no-access-log", "--log-level", "warning"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=args.tree, env=environment, stdout=output, stderr=subprocess.STDOUT)
    watchdog = Watchdog(process.pid, args.rss_limit_mb * MB)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited during start-up:\n{log.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield Service(url, port, process, watchdog, log)
    finally:
        watchdog.stop()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.unlink(missing_ok=True)


class Poller:
    """GET /healthz back to back on its own connection: the longest answer is how long the loop was frozen."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.longest = 0.0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Poller:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            while True:
                started = time.perf_counter()
                try:
                    await client.get(f"{self.url}/healthz")
                except httpx.HTTPError:
                    self.failures += 1
                    await asyncio.sleep(0.05)
                self.longest = max(self.longest, time.perf_counter() - started)
                await asyncio.sleep(0.01)


async def get(url: str, *, timeout: float = 60, method: str = "GET", headers: dict[str, str] | None = None) -> Any:
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.request(method, url, headers=headers)


def describe(response: Any) -> str:
    """`status code` of a response (the problem document's code when there is one), or what went wrong."""
    if isinstance(response, BaseException):
        return type(response).__name__
    code = ""
    if response.headers.get("content-type", "").endswith("json"):
        with contextlib.suppress(ValueError, AttributeError):
            code = response.json().get("code") or ""
    return f"{response.status_code} {code}".strip()


def mb(n: int) -> str:
    return f"{n / MB:,.0f} MB"


def table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cells = [tuple(str(c) for c in header), *[tuple(str(c) for c in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  " + "-+-".join("-" * w for w in widths))
    sys.stdout.flush()


# --- 1: the bomb -------------------------------------------------------------------------------------------------


async def bomb(args: argparse.Namespace) -> None:
    body = hostile.gzip_of_gzip_bomb(GIB)
    with hostile_upstream() as upstream, service(args, upstream) as svc:
        upstream.reset(hostile.answer(hostile.response(body, headers=[(b"Content-Encoding", b"gzip, gzip")])))
        rows = []
        for n in (1, 2):
            before = svc.rss()
            svc.watchdog.reset_peak()
            requests = upstream.requests
            started = time.perf_counter()
            async with Poller(svc.url) as poller:
                try:
                    response: Any = await get(f"{svc.url}/api/external-data/", timeout=120)
                except httpx.HTTPError as exc:
                    response = exc
            took = time.perf_counter() - started
            killed = " (worker KILLED by the watchdog)" if svc.watchdog.killed else ""
            rows.append(
                (
                    f"bomb {n}",
                    describe(response) + killed,
                    mb(before),
                    mb(svc.watchdog.peak),
                    f"{poller.longest * 1000:,.0f} ms",
                    f"{took:.2f} s",
                    upstream.requests - requests,
                )
            )
            if not svc.alive:
                break
        table(
            f"1. gzip,gzip bomb: {len(body):,} bytes on the wire, 1 GiB decoded (Content-Encoding: gzip, gzip)",
            ("request", "answer", "RSS before", "RSS peak", "loop freeze", "time", "upstream requests"),
            rows,
        )


# --- 2: protocol faults, one by one and under load -------------------------------------------------------------------


PROTOCOL_ONE_BY_ONE = (
    "garbage_status_line",
    "not_http",
    "1000_headers",
    "200kb_header",
    "short_content_length",
    "unknown_coding",
    "invalid_utf8",
    "deep_nesting",
    "nesting_1000",
    "huge_number",
    "redirect",
    "stall_mid_headers",
    "stall_mid_body",
    "reset_mid_body",
)


async def protocol_faults(args: argparse.Namespace) -> None:
    faults = hostile_faults(bomb_bytes=64 * MB)
    # Breaker off and one attempt: each row is one fault, not the previous rows' circuit or a retry's luck.
    with (
        hostile_upstream() as upstream,
        service(args, upstream, **_each("BREAKER_FAILURES", "0"), **_each("TIMEOUT", "1")) as svc,
    ):
        rows = []
        for name in PROTOCOL_ONE_BY_ONE:
            upstream.then(*[faults[name]] * 3)  # the first attempt and up to two retries
            requests = upstream.requests
            first = await _safe_get(f"{svc.url}/api/external-data/")
            used = upstream.requests - requests
            upstream.modes.clear()
            after = await _safe_get(f"{svc.url}/api/external-data/")  # the pooled connection, after the fault
            rows.append((name, describe(first), used, describe(after)))
        table(
            f"2a. protocol faults, one at a time ({svc.unhandled()} unhandled exceptions logged)",
            ("upstream fault", "answer", "upstream requests (with retries)", "next request"),
            rows,
        )

    # The breaker opens on protocol faults (default BREAKER_FAILURES=5)?
    with hostile_upstream() as upstream, service(args, upstream) as svc:
        upstream.reset(faults["garbage_status_line"])
        answers = [describe(await _safe_get(f"{svc.url}/api/external-data/")) for _ in range(8)]
        table(
            "2b. eight requests in a row, every upstream answer a garbage status line (default breaker: 5 faults)",
            ("answers", "upstream requests"),
            [(", ".join(f"{a} x{n}" for a, n in Counter(answers).items()), upstream.requests)],
        )

    await load(args, faults)


def _each(suffix: str, value: str) -> dict[str, str]:
    return {f"UPSTREAM_{name.upper()}_{suffix}": value for name in UPSTREAM_NAMES}


async def _safe_get(url: str, **kwargs: Any) -> Any:
    try:
        return await get(url, **kwargs)
    except httpx.HTTPError as exc:
        return exc


LOAD_MIX = {
    "ok": 50,
    "garbage_status_line": 4,
    "1000_headers": 4,
    "200kb_header": 4,
    "short_content_length": 4,
    "answers_twice": 3,
    "gzip_gzip_bomb": 2,
    "unknown_coding": 2,
    "invalid_utf8": 2,
    "deep_nesting": 2,
    "huge_number": 2,
    "status_500": 4,
    "stall_mid_headers": 2,
    "stall_mid_body": 2,
    "reset_mid_body": 4,
}


async def load(args: argparse.Namespace, faults: dict[str, hostile.Mode]) -> None:
    with (
        hostile_upstream() as upstream,
        service(args, upstream, **_each("BREAKER_COOLDOWN", "1")) as svc,
    ):
        drawn: Counter[str] = Counter()
        upstream.reset(drawing(faults, LOAD_MIX, seed=7, drawn=drawn))
        statuses: Counter[str] = Counter()
        smuggled = 0
        stop = time.monotonic() + args.load_seconds
        svc.watchdog.reset_peak()
        before = svc.rss()
        limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)

        async def worker(client: httpx.AsyncClient, n: int) -> None:
            nonlocal smuggled
            i = n
            while time.monotonic() < stop:
                path = "/api/multiple-external-data/" if i % 3 == 0 else "/api/external-data/"
                i += 1
                try:
                    response = await client.get(svc.url + path)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                statuses[describe(response)] += 1
                smuggled += SMUGGLED in response.content

        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            await asyncio.gather(*(worker(client, n) for n in range(args.connections)))
        took = time.perf_counter() - started
        total = sum(statuses.values())
        fives = sum(n for s, n in statuses.items() if s.startswith("500"))
        rows = [(s, n, f"{100 * n / total:.1f}%") for s, n in sorted(statuses.items(), key=lambda kv: -kv[1])]
        rows.append(("total", total, f"{fives} x 500 ({100 * fives / max(total, 1):.1f}%)"))
        rows.append(("responses carrying SMUGGLED", smuggled, ""))
        killed = ", worker KILLED by the watchdog" if svc.watchdog.killed else ""
        rows.append(("upstream requests", upstream.requests, ""))
        rows.append(("unhandled exceptions in the service's log", svc.unhandled(), ""))
        table(
            f"2c. {args.connections} connections for {took:.0f} s, random upstream faults (bomb: 64 MB decoded);"
            f" RSS {mb(before)} -> peak {mb(svc.watchdog.peak)}{killed}",
            ("answer", "count", "share"),
            rows,
        )


# --- 3: a response meant for nobody --------------------------------------------------------------------------------


async def smuggled(args: argparse.Namespace) -> None:
    second = hostile.response(
        b'{"source":"slow_data","message":"SMUGGLED","latency_ms":0,"items":[{"id":666,"value":"x"}]}',
        headers=[(b"Cache-Control", b"max-age=600")],
    )
    with hostile_upstream() as upstream, service(args, upstream) as svc:
        upstream.then(hostile.answer_twice(hostile.response(), second, gap=0.02))  # idle in the pool when it arrives
        answers = []
        for n in range(3):
            response = await _safe_get(f"{svc.url}/api/external-data/")
            got = not isinstance(response, BaseException) and SMUGGLED in response.content
            answers.append((f"request {n + 1}", describe(response), "SMUGGLED" if got else "its own answer"))
            await asyncio.sleep(0.1)
        table(
            "3. the upstream answers request 1 twice (the second answer: SMUGGLED, max-age=600); 2 and 3 follow",
            ("request", "answer", "body"),
            [*answers, ("upstream requests", upstream.requests, "(request 3 from the cache if 2)")],
        )


# --- 4: hostile clients ------------------------------------------------------------------------------------------


async def clients(args: argparse.Namespace) -> None:
    with hostile_upstream() as upstream:
        rows = []
        with service(args, upstream) as svc:
            rows.append(await big_body(svc, 300 * MB, send=False))
        with service(args, upstream) as svc:
            rows.append(await big_body(svc, 300 * MB))
        with service(args, upstream) as svc:
            rows.append(await big_header(svc, 100 * MB))
        with service(args, upstream) as svc:
            rows.append(await slow_headers(svc, 200, args.slow_seconds))
        table("4. hostile clients", ("client", "answer", "time to answer", "RSS before -> peak", "loop freeze"), rows)


async def _open(svc: Service) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", svc.port)


async def _status_line(reader: asyncio.StreamReader, timeout: float) -> str:
    try:
        async with asyncio.timeout(timeout):
            line = await reader.readline()
    except TimeoutError:
        return f"no answer in {timeout:g} s"
    except ConnectionResetError:
        return "reset by the server"  # an answer sent just before the reset is lost with it (no lingering close)
    except ConnectionError:
        return "closed by the server"
    return line.decode("latin-1").strip() or "closed by the server"


async def big_body(svc: Service, size: int, *, send: bool = True) -> tuple[Any, ...]:
    """POST a `size` body (or only declare it, with `send=False`) and wait for the answer."""
    before = svc.watchdog.reset_peak()
    reader, writer = await _open(svc)
    head = f"POST /api/external-data/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n"
    writer.write(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n")
    sent = 0
    chunk = b"\0" * MB
    started = time.perf_counter()

    async def pump() -> None:
        nonlocal sent
        with contextlib.suppress(ConnectionError):
            while send and sent < size:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)

    sender = asyncio.create_task(pump())
    async with Poller(svc.url) as poller:
        status = await _status_line(reader, 120 if send else 10)
        took = time.perf_counter() - started
        at = sent
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender
    writer.close()
    return (
        f"{size // MB} MB request body" + ("" if send else " declared, none sent"),
        f"{status} (after {at // MB} MB sent)",
        f"{took:.2f} s",
        f"{mb(before)} -> {mb(svc.watchdog.peak)}",
        f"{poller.longest * 1000:,.0f} ms",
    )


async def big_header(svc: Service, size: int) -> tuple[Any, ...]:
    before = svc.watchdog.reset_peak()
    reader, writer = await _open(svc)
    started = time.perf_counter()
    sent = 0
    async with Poller(svc.url) as poller:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        with contextlib.suppress(ConnectionError):
            for _ in range(size // MB):
                writer.write(b"a" * MB)
                await writer.drain()
                sent += MB
            writer.write(b"\r\n\r\n")
            await writer.drain()
        status = await _status_line(reader, 60)
        took = time.perf_counter() - started
        await asyncio.sleep(0.3)
    writer.close()
    return (
        f"one {size // MB} MB header",
        f"{status} (after {sent // MB} MB sent)",
        f"{took:.2f} s",
        f"{mb(before)} -> {mb(svc.watchdog.peak)}",
        f"{poller.longest * 1000:,.0f} ms",
    )


async def slow_headers(svc: Service, count: int, seconds: float) -> tuple[Any, ...]:
    before = svc.watchdog.reset_peak()
    connections = [await _open(svc) for _ in range(count)]
    for _, writer in connections:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    closed: set[int] = set()

    async def trickle(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                writer.write(b"X")
                await writer.drain()
                try:
                    async with asyncio.timeout(1):
                        await reader.read(1024)  # EOF, or an answer: either way the server let go of it
                except TimeoutError:
                    continue
                closed.add(n)
                return
        except ConnectionError:
            closed.add(n)

    tasks = [asyncio.create_task(trickle(n, r, w)) for n, (r, w) in enumerate(connections)]
    async with Poller(svc.url) as poller:
        await asyncio.sleep(seconds)
        ok = describe(await _safe_get(f"{svc.url}/healthz", timeout=5))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for _, writer in connections:
        writer.close()
    return (
        f"{count} connections, a header byte a second",
        f"{count - len(closed)} still open after {seconds:g} s; /healthz meanwhile: {ok}",
        "",
        f"{mb(before)} -> {mb(svc.watchdog.peak)}",
        f"{poller.longest * 1000:,.0f} ms",
    )


# --- 5 and 7: error pages and upstream text --------------------------------------------------------------------------


async def docs_options(args: argparse.Namespace) -> None:
    rows = []
    with hostile_upstream() as upstream:
        for debug in ("false", "true"):
            with service(args, upstream, DJANGO_DEBUG=debug) as svc:
                response = await _safe_get(f"{svc.url}/api/docs/", method="OPTIONS")
                text = "" if isinstance(response, BaseException) else response.text
                rows.append(
                    (
                        f"DJANGO_DEBUG={debug}",
                        describe(response),
                        getattr(response, "headers", {}).get("content-type", ""),
                        "yes" if "Traceback" in text or str(args.tree) in text else "no",
                    )
                )
    table("5. OPTIONS /api/docs/", ("setting", "answer", "content type", "traceback or paths in body"), rows)


async def content_type_echo(args: argparse.Namespace) -> None:
    ok = b'{"source":"slow_data","message":"ok","latency_ms":0,"items":[]}'
    evil = b"text/x-evil-" + SCRIPT * 300  # ~8 KB of the upstream's choosing
    with hostile_upstream() as upstream, service(args, upstream, **_each("RETRIES", "0")) as svc:
        upstream.reset(hostile.answer(hostile.response(ok, content_type=evil)))
        response = await _safe_get(f"{svc.url}/api/external-data/")
        body = b"" if isinstance(response, BaseException) else response.content
        table(
            f"7. upstream Content-Type of {len(evil):,} bytes (text/x-evil-<script>...)",
            ("answer", "response body bytes", "upstream text in the response"),
            [(describe(response), len(body), "yes" if b"x-evil" in body or SCRIPT in body else "no")],
        )


SECTIONS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "1": bomb,
    "2": protocol_faults,
    "3": smuggled,
    "4": clients,
    "5": docs_options,
    "7": content_type_echo,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout whose service to run (default: this one)")
    parser.add_argument("--load-seconds", type=float, default=20, help="length of the random-fault load (2c)")
    parser.add_argument("--connections", type=int, default=50, help="connections of the random-fault load (2c)")
    parser.add_argument("--slow-seconds", type=float, default=15, help="how long the slow-header clients trickle")
    parser.add_argument("--rss-limit-mb", type=int, default=6144, help="the watchdog kills the worker past this")
    parser.add_argument("--only", default=",".join(SECTIONS), help="findings to measure, e.g. 1,3")
    args = parser.parse_args()
    args.tree = args.tree.resolve()
    commit = subprocess.run(
        ["git", "-C", str(args.tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(f"Tree: {args.tree} ({commit})")
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load} on {os.cpu_count()} cores")
    print("Service: python -m config.serve --workers 1 (one uvicorn process), local settings; all on loopback")
    failed = False
    for key in args.only.split(","):
        try:
            asyncio.run(SECTIONS[key.strip()](args))
        except Exception as exc:  # noqa: BLE001 - report and go on: one failing section must not hide the others
            failed = True
            print(f"\nsection {key}: could not be measured: {type(exc).__name__}: {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
