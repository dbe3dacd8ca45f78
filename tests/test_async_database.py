"""api/database.py: Django querysets run natively async on PostgreSQL give what Django gives, with no thread.

Against a real PostgreSQL (tests/postgres_server.py), added as a database alias with the settings
`config.env.database_settings` builds from DATABASE_URL. The reference is Django's own sync ORM on the same alias
(`arun(list, qs)`): every instance must match field by field, value and type (`repr`: Decimal scale, time zone,
JSON types, None). Then: `afirst`/`aget` semantics and errors, Django's exception classes, zero thread hops
(directly and through the ASGI application), connections released by `arun` (Django's async ORM, the control, leaks
them under Tributary's handler), the SQLite fallback, and the pools closed at shutdown.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async
from django.db import DataError, IntegrityError, OperationalError, connections, models, transaction
from django.db.models import Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Cast, Lower
from django.db.transaction import TransactionManagementError
from django.http import HttpRequest, JsonResponse
from django.urls import path

from api import database
from api.database import afetch, afirst, aget, arun, close_pools
from tests import test_thread_hops
from tests.test_thread_hops import HopCounter

hops = test_thread_hops.hops  # the fixture, shared

PG = "async_database_pg"


class Owner(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "async_database_tests"

    def __str__(self) -> str:
        return self.name


class Item(models.Model):
    owner = models.ForeignKey(Owner, on_delete=models.CASCADE, related_name="items")
    parent = models.ForeignKey(Owner, on_delete=models.SET_NULL, null=True, related_name="+")
    key = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=100)
    position = models.IntegerField()
    amount = models.DecimalField(max_digits=12, decimal_places=3)
    ratio = models.FloatField(null=True)
    created = models.DateTimeField()
    day = models.DateField(null=True)
    took = models.DurationField(null=True)
    active = models.BooleanField(default=True)
    token = models.UUIDField(null=True)
    payload = models.JSONField(null=True)
    note = models.TextField(null=True)  # noqa: DJ001 - NULL and "" must both round-trip

    class Meta:
        app_label = "async_database_tests"

    def __str__(self) -> str:
        return self.key


PARIS = dt.timezone(dt.timedelta(hours=1))


def rows(owners: list[Owner]) -> list[Item]:
    return [
        Item(
            owner=owners[n % 3],
            parent=owners[0] if n % 4 == 0 else None,
            key=f"k{n:03d}",
            name=f"Item {n} é ✓" if n % 5 else f"ITEM {n}",
            position=n % 7,
            amount=Decimal("1234.500") / (n + 1) if n % 6 else Decimal("0.100"),
            ratio=None if n % 2 else n / 3,
            created=dt.datetime(2026, 3, 29, 1, 30, tzinfo=PARIS) + dt.timedelta(hours=n),
            day=dt.date(2026, 1, 1) + dt.timedelta(days=n) if n % 3 else None,
            took=dt.timedelta(seconds=n, microseconds=7) if n % 2 else None,
            active=bool(n % 2),
            token=uuid.UUID(int=n) if n % 3 else None,
            payload=[
                None,
                {"sku": f"s{n}", "tags": ["a", "b"], "n": n, "f": 1.5, "ok": True, "nil": None, "deep": {"x": [1]}},
                [1, "two", 3.0, False],
                "just a string",
                12,
            ][n % 5],
            note=None if n % 3 else f"note {n}",
        )
        for n in range(30)
    ]


@pytest.fixture(scope="module")
def pg_alias(postgres_url: str, django_db_blocker: Any) -> Iterator[str]:
    """A PostgreSQL alias built by config.env.database_settings from DATABASE_URL, with the test tables and rows."""
    from config.env import database_settings

    with pytest.MonkeyPatch.context() as env:
        # A session time zone that is not UTC: Django sets UTC on its connections, and so must the native pool.
        env.setenv("DATABASE_URL", postgres_url + "?options=-c%20TimeZone%3DAmerica/New_York")
        env.setenv("DATABASE_POOL_MAX_SIZE", "3")
        env.setenv("DATABASE_POOL_TIMEOUT", "1")
        settings_dict = database_settings(sqlite_default="")
    filled = connections.configure_settings({"default": {"ENGINE": "django.db.backends.dummy"}, PG: settings_dict})
    connections.settings[PG] = filled[PG]
    with django_db_blocker.unblock():
        with connections[PG].schema_editor() as editor:
            editor.create_model(Owner)
            editor.create_model(Item)
        owners = [Owner.objects.using(PG).create(name=name) for name in ("Zoé", "adam", "Bob")]
        Item.objects.using(PG).bulk_create(rows(owners))
        connections[PG].close()
        yield PG
        with connections[PG].schema_editor() as editor:
            editor.delete_model(Item)
            editor.delete_model(Owner)
        connections[PG].close()
        connections[PG].close_pool()
    del connections[PG]
    del connections.settings[PG]


@pytest.fixture(autouse=True)
async def _close_pools() -> AsyncIterator[None]:
    """This loop's native pools, and Django's pool for the alias (the leak controls below leave it exhausted)."""
    yield
    await close_pools()
    if PG in connections.settings:
        await sync_to_async(connections[PG].close_pool)()


@pytest.fixture
def db_access(django_db_blocker: Any) -> Iterator[None]:
    """Django's side (the reference path) may use the PostgreSQL alias."""
    with django_db_blocker.unblock():
        yield


def described(obj: models.Model) -> dict[str, Any]:
    """Everything an instance holds, by repr (so 1.50 != 1.5, UTC != +01:00, 1 != 1.0 != True), related included."""
    values = {name: repr(value) for name, value in vars(obj).items() if name != "_state"}
    related = {name: described(value) for name, value in obj._state.fields_cache.items() if value is not None}
    return {"class": type(obj).__name__, "db": obj._state.db, "adding": obj._state.adding, **values, **related}


def items() -> Any:
    return Item.objects.using(PG)


QUERYSETS = {
    "all": lambda: items().order_by("pk"),
    "filter and order": lambda: items().filter(position__gte=2, active=True).order_by("-amount", "key"),
    "json key": lambda: items().filter(payload__sku="s6").order_by("pk"),
    "json null and missing": lambda: items().filter(payload__isnull=True).order_by("pk"),
    "select_related": lambda: items().select_related("owner", "parent").order_by("key"),
    "annotations": lambda: (
        items().annotate(lowered=Lower("name"), double=F("position") * 2, label=Value("x")).order_by("lowered", "pk")
    ),
    "subquery annotation": lambda: (
        Owner.objects.using(PG)
        .annotate(
            count=Subquery(Item.objects.filter(owner=OuterRef("pk")).values("owner").annotate(n=Count("*")).values("n"))
        )
        .order_by("name")
    ),
    "timestamp as text (session time zone)": lambda: (
        items().annotate(text=Cast("created", output_field=models.TextField())).order_by("pk")
    ),
    "only": lambda: items().only("name", "created").order_by("pk"),
    "defer": lambda: items().defer("payload", "note").order_by("pk"),
    "slice": lambda: items().order_by("key")[5:9],
    "extra select for ordering": lambda: items().distinct().order_by("owner__name", "key"),
    "empty in": lambda: items().filter(pk__in=[]),
    "none": lambda: items().none(),
    "nothing matches": lambda: items().filter(key="nope"),
    "subquery filter": lambda: Owner.objects.using(PG).filter(pk__in=items().filter(position=3).values("owner")),
}


@pytest.mark.parametrize("name", list(QUERYSETS))
async def test_native_instances_equal_djangos_value_for_value(pg_alias: str, db_access: None, name: str) -> None:
    expected = await arun(lambda: [described(obj) for obj in QUERYSETS[name]()])

    found = [described(obj) for obj in await afetch(QUERYSETS[name]())]

    assert found == expected
    if name == "all":
        assert len(found) == 30
        assert {row["payload"] for row in found} == {
            repr(value) for value in (None, "just a string", 12, [1, "two", 3.0, False])
        } | {repr(obj.payload) for obj in await afetch(items().filter(payload__sku__isnull=False))}
        assert "tzinfo=datetime.timezone.utc" in found[0]["created"]  # stored +01:00, read back in UTC, as Django


VALUES = {
    "values": lambda: items().values("key", "amount", "created", "payload", "note", "token").order_by("pk"),
    "values with related and annotation": lambda: (
        items().values("key", "owner__name").annotate(double=F("position") * 2).order_by("owner__name", "key")
    ),
    "values_list": lambda: items().values_list("key", "ratio", "took", "day").order_by("-pk"),
    "values_list flat": lambda: items().values_list("amount", flat=True).order_by("pk"),
    "values_list, extra select for ordering": lambda: (
        items().values_list("position").distinct().order_by("position", "owner__name")
    ),
    "values, nothing matches": lambda: items().filter(key="nope").values("key"),
}


@pytest.mark.parametrize("name", list(VALUES))
async def test_native_values_equal_djangos(pg_alias: str, db_access: None, name: str) -> None:
    expected = await arun(lambda: repr(list(VALUES[name]())))

    found = repr(await afetch(VALUES[name]()))

    assert found == expected
    assert name.endswith("nothing matches") or found != "[]"


async def test_select_related_instances_are_cached_on_the_object(pg_alias: str, db_access: None) -> None:
    item = await afirst(items().select_related("owner").filter(key="k004"))

    assert item is not None
    assert Item.owner.is_cached(item)
    assert item.owner.name == "adam"


async def test_afirst_is_first(pg_alias: str, db_access: None) -> None:
    unordered = items().filter(position=3)

    found = await afirst(unordered)
    expected = await arun(unordered.first)

    assert found is not None
    assert expected is not None
    assert described(found) == described(expected)  # ordered by pk, as first() does
    assert await afirst(items().order_by("-key")) == await arun(items().order_by("-key").first)
    assert await afirst(items().filter(key="nope")) is None


async def test_aget_returns_one_or_raises_djangos_errors(pg_alias: str, db_access: None) -> None:
    assert (await aget(items(), key="k007")).position == 0

    with pytest.raises(Item.DoesNotExist, match=r"^Item matching query does not exist\.$"):
        await aget(items(), key="nope")
    with pytest.raises(Item.MultipleObjectsReturned) as native:
        await aget(items(), position=1)
    with pytest.raises(Item.MultipleObjectsReturned) as django:
        await arun(items().get, position=1)
    assert str(native.value) == str(django.value) == "get() returned more than one Item -- it returned 5!"
    with pytest.raises(Item.MultipleObjectsReturned, match="it returned more than 20!"):
        await aget(items())


async def test_a_database_error_is_djangos_class_with_psycopgs_as_cause(pg_alias: str, db_access: None) -> None:
    import psycopg

    bad = items().filter(name__regex="(unclosed")

    with pytest.raises(DataError) as native:
        await afetch(bad)
    with pytest.raises(DataError) as django:
        await arun(list, bad)

    assert type(native.value) is type(django.value)
    assert isinstance(native.value.__cause__, psycopg.errors.InvalidRegularExpression)


@pytest.mark.parametrize(
    ("psycopg_error", "django_error"),
    [
        ("UniqueViolation", IntegrityError),
        ("ForeignKeyViolation", IntegrityError),
        ("SerializationFailure", OperationalError),
        ("UndefinedTable", "ProgrammingError"),
        ("InvalidTextRepresentation", DataError),
    ],
)
def test_psycopg_errors_map_to_djangos_classes_as_djangos_wrapper_does(psycopg_error: str, django_error: Any) -> None:
    import psycopg
    from django.db import utils

    error = getattr(psycopg.errors, psycopg_error)("boom")
    expected = getattr(utils, django_error) if isinstance(django_error, str) else django_error

    mapped = database._django_error(error)

    assert type(mapped) is expected
    assert mapped.args == ("boom",)


async def test_a_full_pool_is_djangos_operational_error(pg_alias: str, db_access: None) -> None:
    pool = await database._pool(PG)  # max 3, timeout 1 s (pg_alias)
    held = [await pool.getconn() for _ in range(3)]
    try:
        with pytest.raises(OperationalError):
            await afetch(items())
    finally:
        for conn in held:
            await pool.putconn(conn)


async def test_what_native_querysets_cannot_do_is_refused(pg_alias: str, db_access: None) -> None:
    with pytest.raises(TypeError, match="natively async"):
        await afetch(items().values_list("key", named=True))
    with pytest.raises(TypeError, match="prefetch_related"):
        await afetch(Owner.objects.using(PG).prefetch_related("items"))
    with pytest.raises(TransactionManagementError):
        await afetch(items().select_for_update())


async def test_native_reads_see_committed_data_only(pg_alias: str, db_access: None) -> None:
    """Native reads have their own autocommit connection: a transaction in progress in arun() is invisible."""

    def write_then_look() -> tuple[int, int]:
        with transaction.atomic(using=PG):
            Owner.objects.using(PG).create(name="uncommitted")
            inside = len(async_to_sync(afetch)(Owner.objects.using(PG).filter(name="uncommitted")))
            django = Owner.objects.using(PG).filter(name="uncommitted").count()
            transaction.set_rollback(True, using=PG)
        return inside, django

    assert await arun(write_then_look) == (0, 1)


async def test_no_thread_hop_on_postgresql(pg_alias: str, db_access: None, hops: HopCounter) -> None:
    await afetch(items()[:1])  # warm: the pool exists and has a connection
    hops.hops.clear()

    await afetch(items().select_related("owner"))
    await afirst(items().filter(key="k001"))
    await aget(items(), key="k002")

    assert hops.hops == []


async def test_the_hop_counter_sees_djangos_async_orm(pg_alias: str, db_access: None, hops: HopCounter) -> None:
    await arun(items().count)
    hops.hops.clear()

    await items().filter(key="k001").afirst()

    assert [hop for hop in hops.hops if hop.startswith("sync_to_async")] == ["sync_to_async(QuerySet.first)"]


# The same read served by the ASGI application: each request in its own ThreadSensitiveContext, as in production.
async def native_view(request: HttpRequest) -> JsonResponse:
    item = await afirst(items().select_related("owner").filter(key=request.GET["key"]))
    return JsonResponse({"owner": item.owner.name if item else None})


async def django_view(request: HttpRequest) -> JsonResponse:
    item = await items().select_related("owner").filter(key=request.GET["key"]).afirst()
    return JsonResponse({"owner": item.owner.name if item else None})


urlpatterns = [path("native/", native_view), path("django/", django_view)]


async def test_a_request_reading_natively_costs_no_thread_hop(
    pg_alias: str, db_access: None, hops: HopCounter, settings: Any
) -> None:
    from config import asgi

    settings.ROOT_URLCONF = __name__
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi.application), base_url="http://127.0.0.1") as c:
        assert (await c.get("/native/?key=k005")).json() == {"owner": "Bob"}  # warm
        hops.hops.clear()

        responses = [await c.get(f"/native/?key=k00{n}") for n in range(1, 4)]

        assert [r.json() for r in responses] == [{"owner": "adam"}, {"owner": "Bob"}, {"owner": "Zoé"}]
        assert hops.hops == []
        hops.hops.clear()
        await c.get("/django/?key=k005")
        assert hops.hops  # the control: Django's async ORM in the same place hops


async def test_djangos_async_orm_in_a_view_gives_its_connection_back(
    pg_alias: str, db_access: None, settings: Any
) -> None:
    """Tributary's handler returns the connections of a request's thread at its end (config/handler.py
    release_request_thread): five requests through Django's async ORM against a pool of 3 with a 1 s timeout."""
    from config import asgi

    settings.ROOT_URLCONF = __name__
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi.application), base_url="http://127.0.0.1") as c:
        responses = [await c.get("/django/?key=k005") for _ in range(5)]

    assert [r.status_code for r in responses] == [200] * 5


async def test_arun_returns_each_requests_connection_to_the_pool(pg_alias: str, db_access: None) -> None:
    """Tributary's handler does not run close_old_connections in the request's thread; arun() releases it itself.
    Five requests (each its own thread) against a pool of 3 with a 1 s timeout: all served."""

    async def request() -> int:
        async with ThreadSensitiveContext():
            return await arun(items().count)

    assert [await request() for _ in range(5)] == [30] * 5


async def test_djangos_async_orm_in_a_request_keeps_its_connection(pg_alias: str, db_access: None) -> None:
    """The control for the test above: without arun's release, each request's thread holds a pool connection
    (under Django's stock handler, request_finished would close it in that thread; ours runs it on the loop)."""

    async def request() -> int:
        async with ThreadSensitiveContext():
            return await sync_to_async(items().count)()

    served = []
    with pytest.raises(OperationalError):  # noqa: PT012 - the loop is the point: the sixth request waits, then fails
        for _ in range(5):
            served.append(await request())
    assert served == [30] * 3  # one request per pool connection, never given back


async def test_pools_are_per_event_loop_and_closed_by_close_pools(pg_alias: str, db_access: None) -> None:
    await afetch(items()[:1])
    pool = await database._pool(PG)
    assert not pool.closed

    await close_pools()

    assert pool.closed
    assert asyncio.get_running_loop() not in database._pools
    assert len(await afetch(items()[:2])) == 2  # a new pool on next use


async def test_the_asgi_lifespan_shutdown_closes_this_loops_pools(pg_alias: str, db_access: None) -> None:
    from config import asgi

    await afetch(items()[:1])
    pool = await database._pool(PG)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return next(messages)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    await asgi.application({"type": "lifespan"}, receive, send)

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert pool.closed


@pytest.mark.django_db(transaction=True)
async def test_sqlite_reads_take_one_hop_through_djangos_orm(hops: HopCounter) -> None:
    from django.db.migrations.recorder import MigrationRecorder

    migration = MigrationRecorder.Migration
    await arun(migration.objects.create, app="async_db_probe", name="0001")
    assert not database.is_native("default")
    hops.hops.clear()

    found = await afetch(migration.objects.filter(app="async_db_probe"))
    first = await afirst(migration.objects.filter(app="async_db_probe"))
    got = await aget(migration.objects.all(), app="async_db_probe")

    assert [m.name for m in found] == ["0001"]
    assert first is not None
    assert first.pk == got.pk == found[0].pk
    assert [hop for hop in hops.hops if hop.startswith("sync_to_async")] == ["sync_to_async(arun.<locals>.call)"] * 3
    with pytest.raises(migration.DoesNotExist):
        await aget(migration.objects.all(), app="nope")


@pytest.mark.e2e
def test_the_database_benchmark_runs_every_path_without_a_failure() -> None:
    """`make bench-database` works (a few operations per case; figures are the benchmark's business, not asserted)."""
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [sys.executable, "benchmarks/database.py", "--quick", "--ops", "8"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line.split(" | ") for line in result.stdout.splitlines() if line.startswith(("| PostgreSQL", "| SQLite"))]
    assert {(row[0][2:], row[3]) for row in rows} == {
        ("PostgreSQL", path) for path in ("django-async", "one-hop", "native", "psycopg-raw")
    } | {("SQLite", path) for path in ("django-async", "one-hop")}
    assert all(row[-1].strip(" |") == "" for row in rows), result.stdout  # the failures column is empty
    native = [row for row in rows if row[3] == "native"]
    assert native
    assert {row[9] for row in native} == {"0.00"}  # hops per operation


# The API key lookup on a cache miss (api/clients/keys.py), in a process whose default database is PostgreSQL.
KEY_LOOKUP = """
import asyncio, json
import django
django.setup()
from asgiref.sync import SyncToAsync, ThreadSensitiveContext
from api.clients.keys import create_key, last_used, lookup_key
from django.db import connections
from api.clients.models import Client
from api.database import close_pools

client = Client.objects.create(name="async-db-probe")
new = create_key(client)
connections.close_all()  # this thread's connection back to the pool: the count below is the async part's
hops = []
original = SyncToAsync.__call__

async def counting(self, *args, **kwargs):
    hops.append(getattr(self.func, "__qualname__", str(self.func)))
    return await original(self, *args, **kwargs)

async def main():
    await lookup_key(new.key)  # warm: the pool is opened
    SyncToAsync.__call__ = counting
    async with ThreadSensitiveContext():  # as a request
        found, _ = await lookup_key(new.key)
        wrong, _ = await lookup_key(new.key[:-8] + "x" * 8)
    SyncToAsync.__call__ = original
    async with ThreadSensitiveContext():
        last_used().touch(found.caller.key_id)  # the batch writer's task starts inside a request, as in production
    await last_used().stop()  # writes the batch
    await close_pools()
    return found, wrong

found, wrong = asyncio.run(main())
stats = connections["default"].pool.get_stats()
client.delete()
print(json.dumps({
    "caller": found.caller.client_name,
    "wrong": wrong.refusal,
    "hops": hops,
    "connections_in_use": stats["pool_size"] - stats["pool_available"],
}))
"""


def test_an_api_key_lookup_on_a_cache_miss_costs_no_thread_hop_on_postgresql(postgres_url: str) -> None:
    import json
    import subprocess
    import sys

    from tests.test_database import ROOT, database_environment, manage

    env = database_environment(DATABASE_URL=postgres_url)
    migrated = manage(env, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr

    result = subprocess.run(
        [sys.executable, "-c", KEY_LOOKUP], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "caller": "async-db-probe",
        "wrong": "unknown",
        "hops": [],
        "connections_in_use": 0,  # the last-used batch writer gave its connection back (arun)
    }
