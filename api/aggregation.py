"""Declarative aggregates: say which upstream calls make up a response, and the engine runs them.

    class ProductOverview(Aggregate):
        product = Fetch(upstream="catalog", path="products/{id}", serializer=CatalogProduct,
                        not_found="There is no product {id}.")
        stock = Fetch(upstream="inventory", path=lambda i: f"stock/{i.results['product']['sku']}",
                      needs=("product",), required=False, serializer=InventoryStock)

        def shape(self, parts: Parts) -> dict: ...

A `FetchEach` enriches the items of a previous part ("for each product of the page, its stock"): the items' keys are
collected and de-duplicated, then fetched in chunks from a batch endpoint (`Batch`: one call per chunk, answers
mapped back by key, never by position) or one by one, at most `concurrency` at a time. Every chunk or item is an
ordinary upstream call (cache, coalescing, retries, breaker, bulkhead and the request's deadline apply to each), run
by a nested fan-out; `Parts.item()` gives `shape()` an item's result, or None and a `missing` entry naming the
item's path in the response (`results[3].inventory`) when the upstream did not return it or its call failed.

Each `Fetch` becomes one `upstreams.Call`: concurrency, dependencies, the deadline and cancellation are the fan-out's
job; validating the payload with the fetch's DRF serializer is this module's. A payload that fails validation is an
`UpstreamPayloadInvalid` (502, or a missing part when optional) naming the failing field paths. A required fetch with
`not_found` turns the upstream's 404 into our own 404: the resource the client asked for does not exist.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import orjson
from django.conf import settings
from django.db import DatabaseError
from rest_framework import exceptions, serializers

from upstreams import (
    Call,
    Fetched,
    Freshness,
    UpstreamError,
    UpstreamNotFound,
    UpstreamPayloadInvalid,
    UpstreamUnavailable,
    fan_out,
    get_registry,
    remaining,
    validate_calls,
)
from upstreams.demo import demo_payload

from . import fastpath
from .problems import error_code, flatten_errors

__all__ = [
    "Aggregate",
    "Batch",
    "Enriched",
    "Fetch",
    "FetchEach",
    "Inputs",
    "Parts",
    "Read",
    "Route",
    "Timing",
    "missing_entry",
    "published",
    "stale_entry",
    "unpublish",
]


logger = logging.getLogger("tributary.aggregation")


@dataclass(frozen=True)
class Inputs:
    """What a fetch can build its request from: the request's arguments and the results it `needs`."""

    args: Mapping[str, Any]
    results: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Fetch:
    """One upstream call of an aggregate.

    `path` is relative to the upstream's base URL: a format string over the request's arguments (values are
    URL-quoted), or a function of `Inputs`. `when` returning False skips the call (its part is None, not missing).
    """

    upstream: str
    path: str | Callable[[Inputs], str]
    serializer: type[serializers.Serializer]
    params: Callable[[Inputs], Mapping[str, Any]] | None = None
    needs: tuple[str, ...] = ()
    required: bool = True
    when: Callable[[Inputs], bool] | None = None
    not_found: str | None = None
    cache_ttl: float | None = None  # seconds; None: the upstream's CACHE_TTL (its Cache-Control wins either way)

    def build_path(self, inputs: Inputs) -> str:
        if callable(self.path):
            return self.path(inputs)
        return self.path.format_map({key: quote(str(value), safe="") for key, value in inputs.args.items()})


@dataclass(frozen=True, kw_only=True)
class Batch:
    """An upstream's batch endpoint: `GET path?param=k1,k2,...` with at most `size` keys, answering a JSON object
    whose `results` member lists one object per key it knows, naming its key in `key` (in any order; keys it does
    not know are left out)."""

    path: str
    param: str
    key: str
    results: str = "items"
    size: int = 50
    separator: str = ","

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"Batch(size={self.size}): a chunk holds at least one key")


@dataclass(frozen=True, kw_only=True)
class FetchEach:
    """For each item of a previous part, fetch something by the item's key.

    `of` names the part; `items` takes its validated data to the list of items (default: the data itself); `key`
    takes an item to its key. With `batch`, keys go to the batch endpoint `batch.size` at a time; otherwise each key
    is fetched from `path` (a format string with `{key}`, URL-quoted), at most `concurrency` calls at a time (also
    the number of batch chunks in flight at once). `serializer` validates one key's answer. Always optional: an item
    that cannot be enriched is reported, never fatal.
    """

    upstream: str
    of: str
    key: Callable[[Any], Hashable]
    serializer: type[serializers.Serializer]
    items: Callable[[Any], Sequence[Any]] = lambda data: data
    batch: Batch | None = None
    path: str | None = None
    concurrency: int = 5
    cache_ttl: float | None = None

    required: ClassVar[bool] = False
    not_found: ClassVar[None] = None

    def __post_init__(self) -> None:
        if (self.batch is None) == (self.path is None):
            raise TypeError("FetchEach takes exactly one of `batch` (a batch endpoint) and `path` (one call per key)")
        if self.path is not None and "{key}" not in self.path:
            raise TypeError(f"FetchEach(path={self.path!r}) must contain {{key}}")
        if self.concurrency < 1:
            raise ValueError(f"FetchEach(concurrency={self.concurrency}): at least one call at a time")

    @property
    def needs(self) -> tuple[str, ...]:
        return (self.of,)

    def keys(self, data: Any) -> list[Hashable]:
        """The distinct keys of the part's items, in order of first appearance."""
        return list(dict.fromkeys(self.key(item) for item in self.items(data)))

    def requests(self, keys: list[Hashable]) -> list[tuple[list[Hashable], str, dict[str, str] | None]]:
        """One (keys, path, query) per upstream call: a chunk of keys per batch call, or one key per call."""
        if self.batch is not None:
            batch = self.batch
            chunks = [keys[start : start + batch.size] for start in range(0, len(keys), batch.size)]
            return [(chunk, batch.path, {batch.param: batch.separator.join(map(str, chunk))}) for chunk in chunks]
        assert self.path is not None
        return [([key], self.path.format(key=quote(str(key), safe="")), None) for key in keys]

    def answers(self, keys: list[Hashable], payload: Any) -> dict[Hashable, Any]:
        """The validated answer for each of `keys` the upstream returned (an `UpstreamError` for an invalid one),
        matched by key: an answer whose key was not asked for is ignored."""
        if self.batch is None:
            return {keys[0]: _validated_or_error(self.upstream, self.serializer, payload)}
        listed = payload.get(self.batch.results) if isinstance(payload, dict) else None
        if not isinstance(listed, list):
            raise UpstreamPayloadInvalid(self.upstream, {self.batch.results: "not_a_list"})
        wanted = {str(key): key for key in keys}  # an answer's key may be typed differently (7 vs "7")
        found: dict[Hashable, Any] = {}
        for answer in listed:
            key = wanted.get(str(answer.get(self.batch.key))) if isinstance(answer, dict) else None
            if key is not None and key not in found:
                found[key] = _validated_or_error(self.upstream, self.serializer, answer)
        return found


@dataclass(frozen=True, kw_only=True)
class Read:
    """A part of an aggregate read from our own data (the database), declared beside the fetches: `run(inputs)`
    returns its data, or None when there is nothing (then `not_found`, when given, is our 404). It runs in the same
    fan-out as the upstream calls, under the same deadline, and shows in `Server-Timing` as `source` ("database").
    A response with a `Read` part is private to its client and not to be reused without asking (`max-age=0`)."""

    run: Callable[[Inputs], Awaitable[Any]]
    needs: tuple[str, ...] = ()
    required: bool = True
    not_found: str | None = None
    source: str = "database"

    @property
    def upstream(self) -> str:
        return self.source


NOT_RETURNED = "The upstream service returned nothing for this item."


@dataclass
class Enriched:
    """A `FetchEach` part's result: each key's validated answer, or the error that stands in for it."""

    upstream: str
    values: dict[Hashable, Any] = field(default_factory=dict)
    errors: dict[Hashable, UpstreamError] = field(default_factory=dict)
    fetched: list[Fetched] = field(default_factory=list)
    calls: int = 0
    failed_calls: int = 0

    def get(self, key: Hashable) -> Any:
        return self.values.get(key)


@dataclass(frozen=True)
class Timing:
    """One call's contribution to the Server-Timing header."""

    name: str
    upstream: str
    seconds: float
    fetched: Fetched | None
    error: UpstreamError | None
    outcome: str | None = None  # instead of the one derived from `fetched` (an enrichment: its calls)

    def header_entry(self) -> str:
        if self.outcome is not None:
            outcome = self.outcome
        elif self.error is not None:
            outcome = self.error.code
        elif self.fetched is None:
            outcome = "skipped"
        else:
            outcome = self.fetched.cache
            if self.fetched.attempts > 1:
                outcome += f" retried={self.fetched.attempts - 1}"
        return f'{self.name};dur={self.seconds * 1000:.1f};desc="{self.upstream} {outcome}"'


@dataclass
class Parts:
    """The validated results of an aggregate's fetches, what is missing, what is stale, and how long each took."""

    args: Mapping[str, Any]
    results: dict[str, Any]
    missing: list[dict[str, str]] = field(default_factory=list)
    stale: list[dict[str, Any]] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    freshness: list[Freshness] = field(default_factory=list)  # one per upstream answer (or failure) used

    def get(self, name: str) -> Any:
        """A fetch's validated data, or None when it failed, was skipped, or was not attempted."""
        return self.results.get(name)

    def item(self, name: str, key: Hashable, *, path: str) -> Any:
        """The answer `FetchEach` part `name` got for `key`, or None; when the upstream did not return it or its
        call failed, a `missing` entry says so at `path` (the item's field in the response, `results[3].inventory`).
        When the whole part failed, its one entry in `missing` covers every item."""
        enriched = self.results.get(name)
        if not isinstance(enriched, Enriched):
            return None
        if key in enriched.values:
            return enriched.values[key]
        error = enriched.errors.get(key) or UpstreamNotFound(enriched.upstream, NOT_RETURNED)
        self.missing.append({**missing_entry(name, error), "path": path})
        return None

    def cache_control(self, *, private: bool = False) -> str:
        """The response's `Cache-Control`: the strictest of its parts' (`private` also when the response is for
        one client); a response with a part missing or stale is not to be reused (max-age=0)."""
        parts = list(self.freshness)
        if private:
            parts = [replace(part, private=True) for part in parts] or [Freshness(0.0, private=True)]
        return Freshness.strictest(parts).header()

    def server_timing(self) -> str:
        return ", ".join(timing.header_entry() for timing in self.timings)


def missing_entry(source: str, error: UpstreamError) -> dict[str, str]:
    return {"source": source, "upstream": error.upstream, "code": error.code, "detail": error.detail}


def stale_entry(source: str, upstream: str, fetched: Fetched) -> dict[str, Any]:
    error = fetched.error
    return {
        "source": source,
        "upstream": upstream,
        "age": round(fetched.age or 0.0, 3),
        "code": error.code if error else "stale",
        "detail": "Served from the last good response because the upstream failed: "
        + (error.detail if error else "unknown error."),
    }


class Aggregate:
    """Base class: declare `Fetch` attributes, implement `shape()`, and `await MyAggregate().build(args)`.

    A subclass with a `route` is published: api/urls.py serves it as an adrf viewset action and the schema documents
    it, all from the declaration. Its docstring is the operation's summary (first paragraph) and description (the
    rest); `response` shapes its body and `query` (when given) validates its query string; `tag` groups it in the
    docs; `operation_id` defaults to `get_<snake_case class name>`. `route` is relative to `/api/`, with at most one
    typed path parameter, `{name:int}` or `{name:str}`: `"products"`, `"products/{id:int}"`,
    `"products/{id:int}/weather"`.
    """

    fetches: ClassVar[dict[str, Fetch | FetchEach | Read]] = {}
    route: ClassVar[str | None] = None
    query: ClassVar[type[serializers.Serializer] | None] = None
    response: ClassVar[type[serializers.Serializer]]
    tag: ClassVar[str]
    operation_id: ClassVar[str]
    example: ClassVar[Mapping[str, Any] | None] = None  # the request's arguments for the schema's example response

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fetches = dict(cls.fetches)
        fetches.update(
            {name: value for name, value in vars(cls).items() if isinstance(value, Fetch | FetchEach | Read)}
        )
        cls.fetches = fetches
        # Fail at import time, not at the first request, on a name typo in `needs` or a cycle.
        validate_calls([Call(name=n, upstream=f.upstream, run=_never, needs=f.needs) for n, f in fetches.items()])
        if "route" in vars(cls) and cls.route is not None:
            _publish(cls)

    @classmethod
    def parsed_route(cls) -> Route:
        assert cls.route is not None, f"{cls.__name__} is not published (it has no route)"
        return Route.parse(cls.route)

    @classmethod
    def summary(cls) -> str:
        return _doc_paragraphs(cls)[0].removesuffix(".")

    @classmethod
    def description(cls) -> str:
        return "\n\n".join(_doc_paragraphs(cls)[1:])

    @classmethod
    def error_statuses(cls) -> tuple[int, ...]:
        """The error statuses this aggregate can answer, from its declaration.

        400: every aggregate takes the `Request-Timeout` header (and its query, when it has one). 404: a required
        fetch turns the upstream's 404 into ours. 500: any unexpected failure. 502/503/504: its upstream calls.
        """
        statuses = {400, 500}
        if any(fetch.not_found is not None for fetch in cls.fetches.values()):
            statuses.add(404)
        if cls.fetches:
            statuses |= {502, 503, 504}
        return tuple(sorted(statuses))

    @classmethod
    def demo_example(cls) -> Any:
        """The response body to `example` (the request's arguments: path parameter and query), from the demo
        upstreams' data, as the client would receive it: the schema shows it instead of random values. None without
        `example`; `LookupError` when a fetch has no demo answer."""
        if cls.example is None:
            return None
        args, results = dict(cls.example), dict[str, Any]()
        pending = dict(cls.fetches)
        while pending:  # in dependency order (acyclic: checked at declaration)
            for name, fetch in list(pending.items()):
                if all(needed in results for needed in fetch.needs):
                    del pending[name]
                    if isinstance(fetch, FetchEach):
                        results[name] = _demo_enriched(fetch, results[fetch.of])
                        continue
                    if isinstance(fetch, Read):
                        raise LookupError(f"{cls.__name__}.{name} reads our own data: the demo has no example of it")
                    inputs = Inputs(args=args, results={needed: results[needed] for needed in fetch.needs})
                    if fetch.when is not None and not fetch.when(inputs):
                        results[name] = None
                        continue
                    query = {key: str(value) for key, value in fetch.params(inputs).items()} if fetch.params else None
                    payload = demo_payload(fetch.upstream, fetch.build_path(inputs), query)
                    results[name] = validate_payload(fetch.upstream, fetch.serializer, payload)
        aggregate, parts = cls(), Parts(args=args, results=results)
        route = cls.parsed_route()
        url = "https://tributary.example/api/" + route.prefix + "/"
        if route.param is not None:
            url += f"{args[route.param]}/" + (f"{route.action}/" if route.action else "")
        query_args = {key: value for key, value in args.items() if key != route.param}
        request = _ExampleRequest(url + ("?" + urlencode(query_args) if query_args else ""))
        data = aggregate.complete(aggregate.shape(parts), parts, request)
        return orjson.loads(orjson.dumps(fastpath.represent(cls.response, data)))

    def complete(self, data: Any, parts: Parts, request: Any) -> Any:
        """A last touch that needs the HTTP request (a page's links); `data` is `shape()`'s result."""
        return data

    @classmethod
    def upstream_names(cls) -> set[str]:
        return {fetch.upstream for fetch in cls.fetches.values()}

    async def build(self, args: Mapping[str, Any], *, deadline: float | None = None) -> tuple[Any, Parts]:
        """Run every fetch; return `shape()`'s result and the parts (for timings). Raises a required failure."""
        parts = await self.gather(args, deadline=deadline)
        return self.shape(parts), parts

    async def gather(self, args: Mapping[str, Any], *, deadline: float | None = None) -> Parts:
        """`deadline` (seconds) can only shorten settings.AGGREGATE_DEADLINE."""
        limit = settings.AGGREGATE_DEADLINE if deadline is None else min(deadline, settings.AGGREGATE_DEADLINE)
        fetched: dict[str, Fetched] = {}
        calls = [self._call(name, fetch, args, fetched) for name, fetch in self.fetches.items()]
        outcome = await fan_out(calls, deadline=limit)
        missing = [missing_entry(name, error) for name, error in outcome.failures.items()]
        stale = [
            stale_entry(name, self.fetches[name].upstream, result)
            for name, result in fetched.items()
            if result.cache == "stale" and name in outcome.results
        ]
        timings = [
            Timing(name, self.fetches[name].upstream, seconds, fetched.get(name), outcome.failures.get(name))
            for name, seconds in outcome.durations.items()
        ]
        freshness = [result.freshness for result in fetched.values()]
        # A degraded answer is not one to keep: a failed part, a stale one, or an item whose call failed.
        if missing or stale:
            freshness.append(Freshness(0.0))
        for index, timing in enumerate(timings):
            if isinstance(self.fetches[timing.name], Read):
                freshness.append(Freshness(0.0, private=True))
                if timing.error is None:
                    timings[index] = replace(timing, outcome="read")
                continue
            enriched = outcome.results.get(timing.name)
            if isinstance(enriched, Enriched):
                freshness += [result.freshness for result in enriched.fetched]
                if enriched.failed_calls:
                    freshness.append(Freshness(0.0))
                summary = f"{enriched.calls} call" + ("" if enriched.calls == 1 else "s")
                if enriched.failed_calls:
                    summary += f" {enriched.failed_calls} failed"
                timings[index] = Timing(timing.name, timing.upstream, timing.seconds, None, None, outcome=summary)
        return Parts(
            args=args, results=outcome.results, missing=missing, stale=stale, timings=timings, freshness=freshness
        )

    def shape(self, parts: Parts) -> Any:
        raise NotImplementedError

    def _call(
        self, name: str, fetch: Fetch | FetchEach | Read, args: Mapping[str, Any], fetched: dict[str, Fetched]
    ) -> Call:
        if isinstance(fetch, FetchEach):
            return Call(name=name, upstream=fetch.upstream, run=_enrichment(fetch), needs=fetch.needs, required=False)
        if isinstance(fetch, Read):
            reading = _reading(fetch, args)
            return Call(name=name, upstream=fetch.source, run=reading, needs=fetch.needs, required=fetch.required)

        async def run(needed: Mapping[str, Any]) -> Any:
            inputs = Inputs(args=args, results=needed)
            if fetch.when is not None and not fetch.when(inputs):
                return None
            client = get_registry().client(fetch.upstream)
            params = fetch.params(inputs) if fetch.params else None
            try:
                result = await client.fetch_json(fetch.build_path(inputs), params=params, ttl=fetch.cache_ttl)
            except UpstreamNotFound:
                if fetch.not_found is not None:
                    raise exceptions.NotFound(fetch.not_found.format_map(dict(args))) from None
                raise
            fetched[name] = result
            try:
                return validate_payload(fetch.upstream, fetch.serializer, result.payload)
            finally:
                fetched[name] = _without_payload(result)

        return Call(name=name, upstream=fetch.upstream, run=run, needs=fetch.needs, required=fetch.required)


# The enrichment's own deadline ends this much before the request's (at most): so its calls cut short by the deadline
# are reported item by item, rather than the whole part being cancelled by the outer fan-out's deadline first.
ENRICHMENT_DEADLINE_MARGIN = 0.05


def _enrichment(each: FetchEach) -> Callable[[Mapping[str, Any]], Any]:
    """The `run` of a `FetchEach`'s call: a nested fan-out of one call per chunk (or key), each an ordinary
    upstream call, under what is left of the request's deadline."""

    async def run(needed: Mapping[str, Any]) -> Enriched:
        keys = each.keys(needed[each.of])
        enriched = Enriched(each.upstream)
        if not keys:
            return enriched
        client = get_registry().client(each.upstream)

        def call(index: int, chunk: list[Hashable], path: str, query: dict[str, str] | None) -> Call:
            async def fetch_chunk(_: Mapping[str, Any]) -> dict[Hashable, Any]:
                result = await client.fetch_json(path, params=query, ttl=each.cache_ttl)
                enriched.fetched.append(_without_payload(result))
                return each.answers(chunk, result.payload)

            return Call(name=str(index), upstream=each.upstream, run=fetch_chunk, required=False)

        requests = each.requests(keys)
        left = remaining() or settings.AGGREGATE_DEADLINE
        margin = min(ENRICHMENT_DEADLINE_MARGIN, left / 10)
        outcome = await fan_out(
            [call(index, *request) for index, request in enumerate(requests)],
            deadline=max(0.0, left - margin),
            limit=each.concurrency,
        )
        enriched.calls = len(requests)
        for index, (chunk, _, _) in enumerate(requests):
            failure = outcome.failures.get(str(index))
            if failure is not None:
                enriched.failed_calls += 1
                enriched.errors.update(dict.fromkeys(chunk, failure))
                continue
            for key, answer in outcome.results[str(index)].items():
                if isinstance(answer, UpstreamError):
                    enriched.errors[key] = answer
                else:
                    enriched.values[key] = answer
        return enriched

    return run


def _reading(read: Read, args: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], Any]:
    """The `run` of a `Read`'s call: a database failure is the part's failure (503 `upstream_unavailable` with
    `upstream: database` when required, a `missing` entry when not), never a 500."""

    async def run(needed: Mapping[str, Any]) -> Any:
        try:
            data = await read.run(Inputs(args=args, results=needed))
        except DatabaseError:
            logger.exception("%s: the read failed", read.source)
            raise UpstreamUnavailable(read.source, "The database is unavailable.") from None
        if data is None and read.not_found is not None:
            raise exceptions.NotFound(read.not_found.format_map(dict(args)))
        return data

    return run


def _validated_or_error(upstream: str, serializer_class: type[serializers.Serializer], payload: Any) -> Any:
    try:
        return validate_payload(upstream, serializer_class, payload)
    except UpstreamPayloadInvalid as exc:
        return exc


def _demo_enriched(each: FetchEach, data: Any) -> Enriched:
    """What `each` gets from the demo upstreams for the part's `data` (for documentation examples)."""
    enriched = Enriched(each.upstream)
    for chunk, path, query in each.requests(each.keys(data)):
        for key, answer in each.answers(chunk, demo_payload(each.upstream, path, query)).items():
            if not isinstance(answer, UpstreamError):
                enriched.values[key] = answer
    return enriched


def _without_payload(result: Fetched) -> Fetched:
    """How a call's payload was obtained, without the payload: what the request keeps for its timings and freshness
    once the validated (or answered) data is made. The upstream's decoded JSON is freed then, not when the whole
    response is sent: at 256 connections and 40-item payloads, 104-105 -> 97 MB peak RSS (wrk, interleaved runs)."""
    return replace(result, payload=None)


def validate_payload(upstream: str, serializer_class: type[serializers.Serializer], payload: Any) -> Any:
    """Validated data, or `UpstreamPayloadInvalid` naming the failing paths and codes (never the values).

    The compiled fast path (api/fastpath.py) answers well-typed payloads; DRF itself decides everything else.
    """
    try:
        return fastpath.validate(serializer_class, payload)
    except fastpath.Fallback:
        pass
    serializer = serializer_class(data=payload)
    if not serializer.is_valid():
        fields: dict[str, str] = {}
        for path, error in flatten_errors(serializer.errors):
            fields.setdefault(path or "(root)", error_code(error))  # one code per path: the first
        raise UpstreamPayloadInvalid(upstream, fields)
    return serializer.validated_data


@dataclass(frozen=True)
class _ExampleRequest:
    """What `Aggregate.complete()` may ask of the request, for a documentation example."""

    url: str

    def build_absolute_uri(self) -> str:
        return self.url


_PUBLISHED: dict[str, type[Aggregate]] = {}  # by operation id, in declaration order


def published() -> tuple[type[Aggregate], ...]:
    """Every aggregate with a route, in the order they were declared."""
    return tuple(_PUBLISHED.values())


def unpublish(aggregate: type[Aggregate]) -> None:
    """Withdraw a published aggregate (for tests that declare their own)."""
    if _PUBLISHED.get(aggregate.operation_id) is aggregate:
        del _PUBLISHED[aggregate.operation_id]


def _publish(cls: type[Aggregate]) -> None:
    """Check a published aggregate's declaration at import time, and register it."""
    name = cls.__name__
    if "operation_id" not in vars(cls):
        cls.operation_id = "get_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    problems = []
    if not (cls.__doc__ or "").strip():
        problems.append("a docstring (its summary and description)")
    if not isinstance(getattr(cls, "response", None), type):
        problems.append("a `response` serializer class")
    if not isinstance(getattr(cls, "tag", None), str):
        problems.append("a `tag`")
    if problems:
        raise TypeError(f"published aggregate {name} (route {cls.route!r}) needs " + ", ".join(problems))
    route = cls.parsed_route()
    for other in _PUBLISHED.values():
        same = (other.__module__, other.__qualname__) == (cls.__module__, cls.__qualname__)  # a reloaded module
        if not same and (other.operation_id == cls.operation_id or other.parsed_route() == route):
            raise TypeError(f"aggregates {other.__name__} and {name} have the same route or operation id")
    _PUBLISHED.pop(cls.operation_id, None)
    _PUBLISHED[cls.operation_id] = cls


def _doc_paragraphs(cls: type) -> list[str]:
    """The class's own docstring as paragraphs, each paragraph's lines joined by spaces."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", doc) if block.strip()] or [""]


_CONVERTERS: dict[str, tuple[type, str]] = {"int": (int, r"[0-9]{1,18}"), "str": (str, r"[^/.]+")}


@dataclass(frozen=True)
class Route:
    """A published aggregate's route: `prefix`, or `prefix/{param:type}`, or `prefix/{param:type}/action`."""

    prefix: str
    param: str | None = None
    converter: str = "str"
    action: str | None = None

    @classmethod
    def parse(cls, route: str) -> Route:
        match = _ROUTE.fullmatch(route)
        if match is None:
            raise ValueError(
                f"route {route!r} must be 'prefix', 'prefix/{{name:int|str}}' or 'prefix/{{name:int|str}}/action'"
            )
        prefix, param, converter, action = match.group("prefix", "param", "converter", "action")
        return cls(prefix, param, converter or "str", action)

    @property
    def python_type(self) -> type:
        return _CONVERTERS[self.converter][0]

    @property
    def regex(self) -> str:
        return _CONVERTERS[self.converter][1]


_SEGMENT = r"[a-z0-9][a-z0-9-]*"
_ROUTE = re.compile(
    rf"(?P<prefix>{_SEGMENT}(?:/{_SEGMENT})*?)"
    rf"(?:/\{{(?P<param>[a-z_][a-z0-9_]*)(?::(?P<converter>int|str))?\}}(?:/(?P<action>{_SEGMENT}))?)?"
)


async def _never(needed: Mapping[str, Any]) -> Any:  # pragma: no cover - used only for validating declarations
    raise AssertionError("declaration-only call")
