"""Database reads from async views without a thread: Django querysets executed on psycopg 3's async connection.

Django 5.2's async ORM (`aget`, `afirst`, `async for`) runs every query through `sync_to_async`. Under ASGI each
request has its own `ThreadSensitiveContext`, so its first query starts a thread, and that thread takes its own
connection. Measured (`make bench-database`, README "Database access from async views"), the native path below
costs a fraction of that per query and no thread at all, so on PostgreSQL reads from async views go through it:

    afetch(qs)        -> list[Model]      every row of a queryset (or values() dicts, values_list() tuples)
    afirst(qs)        -> Model | None     QuerySet.first(): ordered by pk unless ordered already
    aget(qs, **kw)    -> Model            QuerySet.get(): Model.DoesNotExist / Model.MultipleObjectsReturned
    arun(fn, ...)     -> result of fn     sync ORM code (writes, transactions) in ONE hop, connection released
    close_pools()                         close this event loop's pools (ASGI lifespan shutdown; tests)

What is replaced: only the execution. Django's compiler still writes the SQL (`compiler.as_sql()`) and converts
the values (`compiler.results_iter`); the rows come from a `psycopg.AsyncClientCursor` (client-side binding, as
Django's own `Cursor`, with Django's adapters: time zones, JSON); the instances are built by a copy of Django
5.2's `ModelIterable.__iter__` (`from_db`, `select_related`, annotations). `tests/test_async_database.py` pins it:
the same querysets through Django and through here give equal instances, value and type.

- Pools: one `psycopg_pool.AsyncConnectionPool` per database alias per event loop (a pool's connections belong to
  the loop they were made on), sized like Django's own pool from `OPTIONS["pool"]` (`DATABASE_POOL_MIN_SIZE`,
  `_MAX_SIZE`, `_TIMEOUT`): a worker holds at most twice `DATABASE_POOL_MAX_SIZE` connections, Django's pool
  (writes, admin, commands) and this one. A pool timeout is `django.db.OperationalError`.
- Transactions: native reads run in autocommit on their own connection. They see committed data only, never the
  uncommitted writes of a `transaction.atomic()` block in progress elsewhere; `select_for_update()` is refused.
  Writes and anything transactional go through `arun()`, where the ORM is Django's own.
- Errors: psycopg's exceptions are raised as Django's (`IntegrityError`, `OperationalError`, ...) with the original
  as `__cause__`, as Django's `DatabaseErrorWrapper` does.
- Other backends (SQLite, the embedded default): there is no async driver, so `afetch`/`afirst`/`aget` run the
  same queryset through Django in one `arun()` hop.
- Not supported natively (TypeError, use `arun`): `values_list(named=True)`, `prefetch_related()` (it needs more
  queries), `select_for_update()`.

`arun()` exists because Tributary's ASGI handler does not run Django's `close_old_connections` in the request's
thread (config/handler.py): a thread's connection is returned to the pool when the function ends, in that thread.
Django's async ORM methods called directly from a view would keep theirs until the thread is collected.
"""

from __future__ import annotations

import asyncio
import operator
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.core.exceptions import EmptyResultSet
from django.db import close_old_connections, connections
from django.db import utils as db_utils
from django.db.models import Model, QuerySet
from django.db.models.query import (
    MAX_GET_RESULTS,
    FlatValuesListIterable,
    ModelIterable,
    ValuesIterable,
    ValuesListIterable,
    get_related_populators,
)
from django.db.transaction import TransactionManagementError

__all__ = ["afetch", "afirst", "aget", "arun", "close_pools", "is_native"]

M = TypeVar("M", bound=Model)
R = TypeVar("R")
T = TypeVar("T")
P = ParamSpec("P")

_NATIVE_ITERABLES = (ModelIterable, ValuesIterable, ValuesListIterable, FlatValuesListIterable)

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = weakref.WeakKeyDictionary()

# Django's own order (django/db/utils.py DatabaseErrorWrapper): the most specific first.
_DJANGO_ERRORS = (
    db_utils.DataError,
    db_utils.OperationalError,
    db_utils.IntegrityError,
    db_utils.InternalError,
    db_utils.ProgrammingError,
    db_utils.NotSupportedError,
    db_utils.DatabaseError,
    db_utils.InterfaceError,
)


def is_native(alias: str = "default") -> bool:
    """Whether querysets on `alias` run natively async (PostgreSQL) rather than through `arun()`."""
    return connections[alias].vendor == "postgresql"


async def afetch(qs: QuerySet[Any, R]) -> list[R]:
    """Every row of a queryset, without a thread on PostgreSQL: instances, or `values()` dicts, or `values_list()`
    tuples (values with `flat=True`)."""
    if not is_native(qs.db):
        return await arun(list, qs)
    return await _fetch(qs)


async def afirst(qs: QuerySet[M]) -> M | None:
    """`QuerySet.first()`: the first instance (by pk unless the queryset is ordered), or None."""
    if not is_native(qs.db):
        return await arun(qs.first)
    if not qs.ordered:
        qs._check_ordering_first_last_queryset_aggregation(method="first")  # type: ignore[attr-defined]
        qs = qs.order_by("pk")
    found = await _fetch(qs[:1])
    return found[0] if found else None


async def aget(qs: QuerySet[M], *args: Any, **kwargs: Any) -> M:
    """`QuerySet.get()`: exactly one instance, else the model's `DoesNotExist` or `MultipleObjectsReturned`."""
    if not is_native(qs.db):
        return await arun(qs.get, *args, **kwargs)
    if qs.query.combinator and (args or kwargs):
        raise db_utils.NotSupportedError(
            f"Calling QuerySet.get(...) with filters after {qs.query.combinator}() is not supported."
        )
    clone = qs._chain() if qs.query.combinator else qs.filter(*args, **kwargs)  # type: ignore[attr-defined]
    if clone.query.can_filter() and not clone.query.distinct_fields:
        clone = clone.order_by()
    clone.query.set_limits(high=MAX_GET_RESULTS)
    found = await _fetch(clone)
    if len(found) == 1:
        return found[0]
    name = qs.model._meta.object_name
    if not found:
        raise qs.model.DoesNotExist(f"{name} matching query does not exist.")  # type: ignore[attr-defined]
    count = len(found) if len(found) < MAX_GET_RESULTS else f"more than {MAX_GET_RESULTS - 1}"
    raise qs.model.MultipleObjectsReturned(  # type: ignore[attr-defined]
        f"get() returned more than one {name} -- it returned {count}!"
    )


async def arun(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run sync Django ORM code (several queries, writes, `transaction.atomic()`) in one thread hop.

    The thread is the request's own (thread-sensitive, as Django's async ORM uses), and its database connections
    go back to the pool (or are closed) when `fn` returns, unless a transaction is still open.
    """

    def call() -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            if not any(conn.in_atomic_block for conn in connections.all(initialized_only=True)):
                close_old_connections()

    return await sync_to_async(call, thread_sensitive=True)()


async def close_pools() -> None:
    """Close the running event loop's pools (the ASGI lifespan shutdown and the test suite call this)."""
    pools = _pools.pop(asyncio.get_running_loop(), {})
    for pool in pools.values():
        await pool.close()


async def _fetch(qs: Any) -> list[Any]:
    if qs._result_cache is not None:
        return list(qs._result_cache)
    _check_native(qs)
    compiler = qs.query.get_compiler(using=qs.db)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return []
    if not sql:
        return []
    rows = await _execute(qs.db, sql, params)
    if compiler.has_extra_select:  # columns added for an ordering, which Django's cursor_iter drops
        rows = [row[: compiler.col_count] for row in rows]
    if qs._iterable_class is ModelIterable:
        return _instances(qs, compiler, rows)
    return _values(qs, compiler, rows)


def _values(qs: Any, compiler: Any, rows: list[tuple[Any, ...]]) -> list[Any]:
    """Django 5.2's `ValuesIterable`, `ValuesListIterable` and `FlatValuesListIterable`, over fetched rows."""
    if qs._iterable_class is ValuesIterable:
        query = qs.query
        names = (
            list(query.selected)
            if query.selected
            else [
                *query.extra_select,
                *query.values_select,
                *query.annotation_select,
            ]
        )
        indexes = range(len(names))
        return [{names[i]: row[i] for i in indexes} for row in compiler.results_iter([rows])]
    if qs._iterable_class is FlatValuesListIterable:
        return [row[0] for row in compiler.results_iter([rows])]
    return list(compiler.results_iter([rows], tuple_expected=True))


def _check_native(qs: Any) -> None:
    if qs._iterable_class not in _NATIVE_ITERABLES:
        raise TypeError("natively async: models, values(), values_list(); run other querysets through arun()")
    if qs._prefetch_related_lookups:
        raise TypeError("natively async: prefetch_related() needs more queries; run it through arun()")
    if qs.query.select_for_update:
        raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")


async def _execute(alias: str, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    import psycopg

    pool = await _pool(alias)
    try:
        async with pool.connection() as conn, conn.cursor() as cursor:
            await cursor.execute(sql, params)
            return await cursor.fetchall()
    except psycopg.Error as exc:
        raise _django_error(exc) from exc


def _django_error(exc: Exception) -> Exception:
    import psycopg

    for django_error in _DJANGO_ERRORS:
        if isinstance(exc, getattr(psycopg, django_error.__name__)):
            return django_error(*exc.args)
    return db_utils.Error(*exc.args)


def _instances(qs: QuerySet[M], compiler: Any, rows: list[tuple[Any, ...]]) -> list[M]:
    """Django 5.2's `ModelIterable.__iter__` after `execute_sql` (django/db/models/query.py), over fetched rows."""
    db = qs.db
    select, klass_info, annotation_col_map = compiler.select, compiler.klass_info, compiler.annotation_col_map
    model_cls = klass_info["model"]
    select_fields = klass_info["select_fields"]
    model_fields_start, model_fields_end = select_fields[0], select_fields[-1] + 1
    init_list = [f[0].target.attname for f in select[model_fields_start:model_fields_end]]
    related_populators = get_related_populators(klass_info, select, db)  # type: ignore[call-arg]  # stubs: Django 6
    known_related_objects = [
        (
            field,
            related_objs,
            operator.attrgetter(
                *[
                    field.attname if from_field == "self" else qs.model._meta.get_field(from_field).attname  # type: ignore[union-attr]
                    for from_field in field.from_fields
                ]
            ),
        )
        for field, related_objs in qs._known_related_objects.items()  # type: ignore[attr-defined]
    ]
    instances = []
    for row in compiler.results_iter([rows]):
        obj = model_cls.from_db(db, init_list, row[model_fields_start:model_fields_end])
        for rel_populator in related_populators:
            rel_populator.populate(row, obj)
        if annotation_col_map:
            for attr_name, col_pos in annotation_col_map.items():
                setattr(obj, attr_name, row[col_pos])
        for field, rel_objs, rel_getter in known_related_objects:
            if field.is_cached(obj):  # loaded by select_related(): keep it
                continue
            try:
                rel_obj = rel_objs[rel_getter(obj)]
            except KeyError:
                pass  # may happen in qs1 | qs2 combinations (Django's comment)
            else:
                setattr(obj, field.name, rel_obj)
        instances.append(obj)
    return instances


async def _pool(alias: str) -> Any:
    """The running loop's pool for `alias`, created and opened on first use."""
    loop = asyncio.get_running_loop()
    pools = _pools.get(loop)
    if pools is None:
        pools = _pools[loop] = {}
    pool = pools.get(alias)
    if pool is None:
        pool = pools[alias] = _new_pool(alias)
    if pool.closed:
        await pool.open()  # idempotent and locked: concurrent first users all wait for the same opening
    return pool


def _new_pool(alias: str) -> Any:
    import psycopg
    from psycopg import sql
    from psycopg_pool import AsyncConnectionPool

    wrapper = connections[alias]
    kwargs = wrapper.get_connection_params()  # Django's: dbname, user, host, ..., its adapters (time zone, JSON)
    pool_options = wrapper.settings_dict["OPTIONS"].get("pool") or {}
    if pool_options is True:
        pool_options = {}
    server_side = wrapper.settings_dict["OPTIONS"].get("server_side_binding") is True
    kwargs["cursor_factory"] = psycopg.AsyncCursor if server_side else psycopg.AsyncClientCursor
    kwargs["autocommit"] = True
    timezone_name = wrapper.timezone_name
    role = wrapper.settings_dict["OPTIONS"].get("assume_role")

    async def configure(conn: Any) -> None:
        # What Django's `_configure_connection` does for its own pool: the session time zone, then the role.
        if timezone_name and conn.info.parameter_status("TimeZone") != timezone_name:
            await conn.execute(wrapper.ops.set_time_zone_sql(), [timezone_name])
        if role:
            await conn.execute(sql.SQL("SET ROLE {}").format(sql.Literal(role)))

    check = AsyncConnectionPool.check_connection if wrapper.settings_dict["CONN_HEALTH_CHECKS"] else None
    return AsyncConnectionPool(
        kwargs=kwargs,
        configure=configure,
        check=check,
        open=False,
        name=f"tributary-{alias}",
        **pool_options,
    )
