"""Measure how Tributary's async views should read the database (`make bench-database`).

Three ways to run the same Django queryset from a coroutine, on a real PostgreSQL (started here with the test suite's
tests/postgres_server.py: Debian's postgresql, loopback TCP, Django's pool from config.env.database_settings) and on
SQLite (a file, as `make run` uses):

- `django-async`: Django 5.2's async ORM (`await qs.afirst()`, `async for`): `sync_to_async` per query;
- `one-hop`: the sync ORM, every query of the request in one `sync_to_async` call (`api.database.arun`), the
  thread's connection released at its end;
- `native` (PostgreSQL): `api.database` (`afirst`/`afetch`): the SQL of Django's compiler on a psycopg 3
  `AsyncConnectionPool`, rows turned into instances with `Model.from_db`, no thread;
- `psycopg-raw` (PostgreSQL, for reference): the same SQL, compiled once beforehand, on the same pool, rows left as
  tuples: the floor under `native`.

Two workloads, on a 300-row table (a unique key, an integer group of 20, decimal, aware datetime, JSON, a nullable
text): `lookup` reads one row by its unique key (an API key lookup on a cache miss); `collection` reads that row then
its group's 20 rows in order (a collection read: two queries).

Three contexts, each at concurrency 1, 16 and 64 (asyncio tasks on one uvloop loop, as in one uvicorn worker):
`task` (plain tasks: asgiref sends every thread-sensitive call to one shared thread), `request` (each operation in
its own asgiref `ThreadSensitiveContext`, as Django's ASGIHandler runs a request; `django-async` then also pays the
end-of-request `close_old_connections` hop that Django's handler makes, without which the thread's connection is
never returned to the pool), and `asgi` (a tiny async view per path served by Tributary's own ASGI handler,
config/handler.py, called like uvicorn calls it; that handler makes no end-of-request hop).

Reported per case: operations/s, latency p50/p99 (µs), this process's CPU time per operation (all its threads; the
steadiest figure on a shared machine), `sync_to_async` hops per operation, threads started per operation, peak threads
alive, and failures (with the first error). Each case is run `--rounds` times, interleaved; the median round by
throughput is shown.

    .venv/bin/python benchmarks/database.py [--ops 1000] [--rounds 3] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS = 300
GROUP = 20
CONCURRENCY = (1, 16, 64)
POOL_MAX = 10  # DATABASE_POOL_MAX_SIZE's default
CASE_SECONDS = 10.0  # longest measured run of one case (warm-up: half)


# --- counters ------------------------------------------------------------------------------------------------------


class Counters:
    hops = 0
    threads = 0


def install_counters() -> None:
    from asgiref.sync import SyncToAsync

    original_call = SyncToAsync.__call__
    original_start = threading.Thread.start

    async def counting_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        Counters.hops += 1
        return await original_call(self, *args, **kwargs)

    def counting_start(self: threading.Thread) -> None:
        Counters.threads += 1
        original_start(self)

    SyncToAsync.__call__ = counting_call  # type: ignore[method-assign]
    threading.Thread.start = counting_start  # type: ignore[method-assign]


# --- Django set-up -------------------------------------------------------------------------------------------------


def configure(pg_url: str, sqlite_path: str) -> None:
    import django
    from django.conf import settings

    from config.env import database_settings

    os.environ["DATABASE_URL"] = pg_url
    os.environ["DATABASE_POOL_MAX_SIZE"] = str(POOL_MAX)
    os.environ["DATABASE_POOL_TIMEOUT"] = "3"  # a leaked pool fails in seconds, not the default 10
    pg = database_settings(sqlite_default="")
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        SECRET_KEY="bench-database",  # noqa: S106 - a throwaway process
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        ROOT_URLCONF=__name__,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sqlite_path}, "postgresql": pg},
    )
    django.setup()


Row: Any = None
urlpatterns: list[Any] = []


def define_model() -> Any:
    from django.db import models

    class BenchRow(models.Model):
        key = models.CharField(max_length=16, unique=True)
        group = models.IntegerField(db_index=True)
        position = models.IntegerField()
        name = models.CharField(max_length=100)
        amount = models.DecimalField(max_digits=10, decimal_places=2)
        created = models.DateTimeField()
        payload = models.JSONField()
        note = models.TextField(null=True)  # noqa: DJ001 - NULLs are part of the row shape measured

        class Meta:
            app_label = "bench_database"

        def __str__(self) -> str:
            return self.key

    return BenchRow


def create_rows(alias: str) -> None:
    from django.db import connections

    with connections[alias].schema_editor() as editor:
        editor.create_model(Row)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    Row.objects.using(alias).bulk_create(
        Row(
            key=f"key{n:05d}",
            group=n // GROUP,
            position=n % GROUP,
            name=f"product {n}",
            amount=Decimal(n) / 4,
            created=start + dt.timedelta(minutes=n),
            payload={"sku": f"sku-{n}", "tags": ["a", "b"], "stock": n % 7},
            note=None if n % 3 else f"note {n}",
        )
        for n in range(ROWS)
    )
    connections[alias].close()


# --- the paths -----------------------------------------------------------------------------------------------------

Op = Callable[[str, int], Awaitable[Any]]


def paths(alias: str, workload: str) -> dict[str, Op]:
    from api import database

    def by_key(key: str) -> Any:
        return Row.objects.using(alias).filter(key=key)

    def group(number: int) -> Any:
        return Row.objects.using(alias).filter(group=number).order_by("position")

    async def django_async(key: str, number: int) -> Any:
        row = await by_key(key).afirst()
        if workload == "collection":
            return row, [r async for r in group(number)]
        return row

    def sync_both(key: str, number: int) -> Any:
        row = by_key(key).first()
        if workload == "collection":
            return row, list(group(number))
        return row

    async def one_hop(key: str, number: int) -> Any:
        return await database.arun(sync_both, key, number)

    found: dict[str, Op] = {"django-async": django_async, "one-hop": one_hop}
    if database.is_native(alias):

        async def native(key: str, number: int) -> Any:
            row = await database.afirst(by_key(key))
            if workload == "collection":
                return row, await database.afetch(group(number))
            return row

        lookup_sql, _ = by_key("x").order_by("pk")[:1].query.get_compiler(using=alias).as_sql()
        group_sql, _ = group(0).query.get_compiler(using=alias).as_sql()

        async def psycopg_raw(key: str, number: int) -> Any:
            pool = await database._pool(alias)
            async with pool.connection() as conn, conn.cursor() as cursor:
                await cursor.execute(lookup_sql, (key,))
                row = await cursor.fetchone()
                if workload == "collection":
                    await cursor.execute(group_sql, (number,))
                    return row, await cursor.fetchall()
                return row

        found["native"] = native
        found["psycopg-raw"] = psycopg_raw
    return found


def in_request_context(op: Op, name: str) -> Op:
    from asgiref.sync import ThreadSensitiveContext, sync_to_async
    from django.db import close_old_connections

    async def run(key: str, number: int) -> Any:
        async with ThreadSensitiveContext():
            result = await op(key, number)
            if name == "django-async":
                # Django's ASGIHandler: request_finished (close_old_connections) in the request's thread.
                await sync_to_async(close_old_connections)()
            return result

    return run


# ASGI: one view per (alias, workload, path), served by Tributary's handler.
_VIEW_OPS: dict[str, Op] = {}


async def view(request: Any, name: str) -> Any:
    from django.http import HttpResponse

    try:
        result = await _VIEW_OPS[name](request.GET["key"], int(request.GET["group"]))
    except Exception as exc:  # noqa: BLE001 - the benchmark reports what failed
        return HttpResponse(f"{type(exc).__name__}: {exc}".encode(), status=500, content_type="text/plain")
    return HttpResponse(b"ok" if result is not None else b"none", content_type="text/plain")


def through_asgi(name: str) -> Op:
    from config.handler import TributaryASGIHandler

    handler = _handler_holder.setdefault("handler", TributaryASGIHandler())

    async def run(key: str, number: int) -> Any:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": f"/{name}/",
            "raw_path": f"/{name}/".encode(),
            "query_string": f"key={key}&group={number}".encode(),
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }
        sent: list[dict[str, Any]] = []
        disconnect: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            return await disconnect

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await handler(scope, receive, send)
        status = sent[0]["status"] if sent else 0
        if status != 200:
            body = b"".join(m.get("body", b"") for m in sent[1:]).decode(errors="replace")
            raise RuntimeError(f"HTTP {status}: {body}")
        return status

    return run


_handler_holder: dict[str, Any] = {}


# --- measuring -----------------------------------------------------------------------------------------------------


@dataclass
class Result:
    database: str
    workload: str
    context: str
    path: str
    concurrency: int
    ops: int
    seconds: float
    latencies_ns: list[int] = field(repr=False)
    cpu_seconds: float
    hops: int
    threads_started: int
    peak_threads: int
    failures: int
    first_error: str | None

    @property
    def ops_per_s(self) -> float:
        return len(self.latencies_ns) / self.seconds  # completed operations only

    def percentile(self, q: float) -> float:
        if not self.latencies_ns:
            return float("nan")
        ordered = sorted(self.latencies_ns)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    def row(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "workload": self.workload,
            "context": self.context,
            "path": self.path,
            "concurrency": self.concurrency,
            "ops_per_s": round(self.ops_per_s, 1),
            "p50_us": round(self.percentile(0.5), 1),
            "p99_us": round(self.percentile(0.99), 1),
            "cpu_us_per_op": round(self.cpu_seconds / max(1, self.ops) * 1e6, 1),
            "hops_per_op": round(self.hops / max(1, self.ops), 2),
            "threads_per_op": round(self.threads_started / max(1, self.ops), 2),
            "peak_threads": self.peak_threads,
            "failures": self.failures,
            "first_error": self.first_error,
        }


async def measure(
    op: Op, *, concurrency: int, ops: int, seed: int, budget: float
) -> tuple[float, list[int], int, str | None, int]:
    rng = random.Random(seed)
    work = [rng.randrange(ROWS) for _ in range(ops)]
    latencies: list[int] = []
    failures = 0
    first_error: str | None = None
    peak = threading.active_count()
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, threading.active_count())
            await asyncio.sleep(0.002)

    async def worker(items: list[int]) -> None:
        nonlocal failures, first_error
        for n in items:
            if time.perf_counter() - started_at > budget:
                return  # a case that fails slowly (a leaked pool: every wait is a pool timeout) is cut short
            started = time.perf_counter_ns()
            try:
                await op(f"key{n:05d}", n // GROUP)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                failures += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"[:160]
                continue
            latencies.append(time.perf_counter_ns() - started)

    sampler = asyncio.create_task(sample())
    started = started_at = time.perf_counter()
    await asyncio.gather(*(worker(work[i::concurrency]) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    sampling = False
    await sampler
    return elapsed, latencies, failures, first_error, peak


async def run_case(
    op: Op, *, database: str, workload: str, context: str, path: str, concurrency: int, ops: int, seed: int
) -> Result:
    warm = max(concurrency * 2, ops // 10)
    await measure(op, concurrency=concurrency, ops=warm, seed=seed + 1, budget=CASE_SECONDS / 2)
    hops, threads, cpu = Counters.hops, Counters.threads, time.process_time()
    elapsed, latencies, failures, first_error, peak = await measure(
        op, concurrency=concurrency, ops=ops, seed=seed, budget=CASE_SECONDS
    )
    return Result(
        database,
        workload,
        context,
        path,
        concurrency,
        len(latencies) + failures,
        elapsed,
        latencies,
        time.process_time() - cpu,
        Counters.hops - hops,
        Counters.threads - threads,
        peak,
        failures,
        first_error,
    )


def cases(quick: bool) -> list[tuple[str, str, str, str, int, Op]]:
    from django.urls import path as route

    found = []
    for alias, database in (("postgresql", "PostgreSQL"), ("default", "SQLite")):
        for workload in ("lookup", "collection"):
            for name, op in paths(alias, workload).items():
                view_name = f"{alias}-{workload}-{name}"
                _VIEW_OPS[view_name] = op
                urlpatterns.append(route(f"{view_name}/", view, {"name": view_name}))
                contexts = {
                    "task": op,
                    "request": in_request_context(op, name),
                    "asgi": through_asgi(view_name),
                }
                for context, runner in contexts.items():
                    if name == "psycopg-raw" and context != "task":
                        continue
                    for concurrency in (1, 64) if quick else CONCURRENCY:
                        found.append((database, workload, context, name, concurrency, runner))
    return found


async def run_all(*, ops: int, rounds: int, quick: bool) -> list[Result]:
    from api import database as db_api

    plan = cases(quick)
    by_case: dict[tuple[str, ...], list[Result]] = {}
    for round_number in range(rounds):
        for index, (database, workload, context, name, concurrency, runner) in enumerate(plan):
            result = await run_case(
                runner,
                database=database,
                workload=workload,
                context=context,
                path=name,
                concurrency=concurrency,
                ops=ops,
                seed=round_number * 1000 + index,
            )
            by_case.setdefault((database, workload, context, name, str(concurrency)), []).append(result)
            if result.failures:
                # A leaked pool stays leaked: start the next case with Django's pool rebuilt.
                reset_django_pools()
            print(f"  round {round_number + 1}/{rounds}: {format_line(result)}", file=sys.stderr, flush=True)
    await db_api.close_pools()
    return [sorted(results, key=lambda r: r.ops_per_s)[len(results) // 2] for results in by_case.values()]


def reset_django_pools() -> None:
    from django.db import connections

    for conn in connections.all():
        if conn.vendor == "postgresql" and conn.pool is not None:
            conn.close_pool()


def format_line(result: Result) -> str:
    r = result.row()
    failed = f"  FAILED {r['failures']}: {r['first_error']}" if r["failures"] else ""
    return (
        f"{r['database']:<10} {r['workload']:<10} {r['context']:<7} {r['path']:<12} c={r['concurrency']:<3} "
        f"{r['ops_per_s']:>8.0f}/s p50 {r['p50_us']:>7.0f}µs p99 {r['p99_us']:>7.0f}µs "
        f"cpu {r['cpu_us_per_op']:>6.0f}µs "
        f"hops {r['hops_per_op']:.2f} threads {r['threads_per_op']:.2f} peak {r['peak_threads']}{failed}"
    )


def print_table(results: list[Result]) -> None:
    print(
        "| database | workload | context | path | conc. | ops/s | p50 µs | p99 µs | CPU µs/op | hops/op | threads/op",
        end="",
    )
    print(" | peak threads | failures |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for result in results:
        r = result.row()
        print(
            f"| {r['database']} | {r['workload']} | {r['context']} | {r['path']} | {r['concurrency']} | "
            f"{r['ops_per_s']:.0f} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['cpu_us_per_op']:.0f} | "
            f"{r['hops_per_op']:.2f} | "
            f"{r['threads_per_op']:.2f} | {r['peak_threads']} | {r['failures'] or ''} |"
        )
    errors = {(r.database, r.workload, r.context, r.path): r.first_error for r in results if r.first_error}
    for (database, workload, context, name), error in errors.items():
        print(f"\n{database} {workload} {context} {name}: {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1000, help="operations per case and round (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, interleaved; the median is shown (default 3)")
    parser.add_argument(
        "--quick", action="store_true", help="concurrency 1 and 64 only, at most 200 operations, 1 round"
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.ops, args.rounds = min(args.ops, 200), 1

    import signal

    import uvloop

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop PostgreSQL (postgres_server's finally) on a kill

    from tests.postgres_server import postgres_server

    global Row
    started = time.perf_counter()
    with postgres_server() as pg_url, tempfile.TemporaryDirectory(prefix="bench-db-") as scratch:
        configure(pg_url, str(Path(scratch) / "bench.sqlite3"))
        Row = define_model()
        for alias in ("postgresql", "default"):
            create_rows(alias)
        install_counters()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(run_all(ops=args.ops, rounds=args.rounds, quick=args.quick))
        reset_django_pools()
    import django

    print(
        f"\nbenchmarks/database.py: {args.ops} operations per case, median of {args.rounds} round(s), "
        f"{ROWS} rows, pool max {POOL_MAX}; Python {sys.version.split()[0]}, Django {django.get_version()}, "
        f"{os.cpu_count()} CPUs, {time.perf_counter() - started:.0f} s\n"
    )
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps([r.row() for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
