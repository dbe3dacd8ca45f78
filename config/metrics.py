"""Prometheus metrics: what they are, how they are recorded, and `GET /metrics`.

Every metric is declared here. The web side is recorded by `RequestMetrics` (a request observer, see
api/middleware.py); the upstream side by `UpstreamMetrics` (an `upstreams.Observer`, installed at start-up by
config/asgi.py when METRICS_ENABLED). Both run inline on the event loop: an update is a dictionary look-up and a
lock-protected add (into a memory-mapped file, with several workers), never a thread hop. Label values are bounded:
routes are URL patterns, upstreams are configured names, outcomes are the Server-Timing words and error codes,
clients are API-key client names (and only on 401/403/429 answers).

Several workers (`python -m config.serve --workers N`): each scrape reaches one worker, so the workers write their
values to files in `PROMETHEUS_MULTIPROC_DIR` (prometheus_client's multiprocess mode, chosen when that variable is
set before prometheus_client is imported), and the worker that answers the scrape adds up every worker's files.
config/serve.py sets the directory (a fresh temporary one unless given), empties it at start, and marks a worker
that exits as dead (its live gauges drop out). Without it (one process), metrics live in the process, plus the
process collector's CPU and memory figures.

`GET /metrics` is not public: it answers only a request with `Authorization: Bearer <METRICS_TOKEN>` (401 without
it), and 404 to everyone when METRICS_TOKEN is unset (README "Operating Tributary"). It is a plain Django view, so
it is not an operation of the public OpenAPI schema.
"""

from __future__ import annotations

import hmac
import os
from bisect import bisect_left
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client import generate_latest as _generate_latest

from api.observe import RequestObserver, RequestRecord
from api.problems import problem_response
from upstreams import CallRecord, Observer, add_observer, remove_observer

__all__ = [
    "MULTIPROCESS_DIR_VARIABLE",
    "RequestMetrics",
    "UpstreamMetrics",
    "exposition",
    "install",
    "metrics_view",
    "uninstall",
]

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# No `_created` series (a timestamp per labelled series): twice the lines for what a scraper already knows.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Seconds. Requests: a cached answer is ~1 ms, an aggregate ~ its slowest upstream, the deadline 10 s by default.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DENIED_STATUSES = frozenset({401, 403, 429})

# --- The web side ----------------------------------------------------------------------------------------------------

http_requests = Histogram(
    "tributary_http_request_duration_seconds",
    "Requests by route (URL pattern), method and status: latency histogram; _count is the number of requests.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
http_in_flight = Gauge(
    "tributary_http_requests_in_flight", "Requests being served now (all workers).", multiprocess_mode="livesum"
)
http_denied = Counter(
    "tributary_http_denied_requests",
    "Unauthenticated (401), forbidden (403) and rate-limited (429) answers, by client (the API key's client name, "
    "or anonymous).",
    ["client", "status"],
)
worker_requests = Gauge(
    "tributary_worker_requests",
    "Requests this worker has served since it started (with several workers: one series per live worker, `pid`).",
    multiprocess_mode="liveall",
)

# --- The upstream side -----------------------------------------------------------------------------------------------

upstream_calls = Histogram(
    "tributary_upstream_call_duration_seconds",
    "Upstream calls by upstream and outcome (as in Server-Timing: miss, hit, revalidated, stale, shared, retried, an "
    "error code, or cancelled): latency histogram, retries and cache included.",
    ["upstream", "outcome"],
    buckets=LATENCY_BUCKETS,
)
upstream_retries = Counter("tributary_upstream_retries", "Upstream attempts after a call's first.", ["upstream"])
upstream_cache = Counter(
    "tributary_upstream_cache",
    "Upstream calls by cache result: hit (fresh copy, no request), miss, revalidated (304), stale (a cached copy "
    "answered a failed call), shared (joined an identical call in flight).",
    ["upstream", "result"],
)
breaker_state = Gauge(
    "tributary_upstream_breaker_state",
    "1 for the state each upstream's circuit breaker is in (closed, open, half_open), as this worker last saw it.",
    ["upstream", "state"],
    multiprocess_mode="liveall",
)
breaker_transitions = Counter(
    "tributary_upstream_breaker_transitions",
    "Circuit breaker state changes, by the state entered.",
    ["upstream", "state"],
)
bulkhead_in_use = Gauge(
    "tributary_upstream_bulkhead_in_use",
    "Upstream calls holding a bulkhead slot now (all workers).",
    ["upstream"],
    multiprocess_mode="livesum",
)
bulkhead_rejections = Counter(
    "tributary_upstream_bulkhead_rejections",
    "Calls refused because the upstream's bulkhead had no free slot in time (upstream_saturated).",
    ["upstream"],
)

BREAKER_STATES = ("closed", "open", "half_open")


class _Observe:
    """`Histogram.observe(amount)` of one labelled child, without what the library does again on every call (check
    that the child is labelled, walk the bounds one by one): the sum, then the first bucket whose upper bound is at
    least `amount`, found by bisection. prometheus_client (pinned in pyproject.toml) keeps a child's sum in `_sum`,
    its buckets in `_buckets` and their bounds, `+Inf` last, in `_upper_bounds`; in multiprocess mode these values
    are the files' (same `inc`). tests/config/test_metrics_recording.py pins the exposition against the library's.
    """

    __slots__ = ("bounds", "buckets", "child", "sum")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.sum = child._sum.inc
        self.buckets = [bucket.inc for bucket in child._buckets]
        self.bounds = child._upper_bounds

    def __call__(self, amount: float) -> None:
        if amount != amount:  # NaN: no bound admits it; the library's own loop then counts it in no bucket
            self.child.observe(amount)
            return
        self.sum(amount)
        self.buckets[bisect_left(self.bounds, amount)](1)


def _observer(cache: dict[Any, _Observe], metric: Any, key: tuple[str, ...]) -> _Observe:
    """The `_Observe` of `metric.labels(*key)`, made once."""
    observe = cache.get(key)
    if observe is None:
        observe = cache[key] = _Observe(metric.labels(*key))
    return observe


def _child(cache: dict[Any, Any], metric: Any, key: tuple[str, ...]) -> Any:
    """`metric.labels(*key)`, looked up once: labels() validates and locks on every call."""
    child = cache.get(key)
    if child is None:
        child = cache[key] = metric.labels(*key)
    return child


class RequestMetrics(RequestObserver):
    """Requests by route and status, in flight, per worker, and denied ones per client."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, ...], _Observe] = {}
        self._denied: dict[tuple[str, ...], Any] = {}
        # Unlabelled: their values are fixed, so their `inc` is taken once (Gauge.inc/dec check the labels and the
        # multiprocess mode on every call; the value's own inc is what they then call).
        self._in_flight = http_in_flight._value.inc
        self._served = worker_requests._value.inc

    def started(self, request: HttpRequest) -> None:
        self._in_flight(1)

    def finished(self, request: HttpRequest, response: HttpResponseBase | None, record: RequestRecord) -> None:
        self._in_flight(-1)
        self._served(1)
        status = str(record.status)
        _observer(self._requests, http_requests, (record.route, record.method, status))(record.seconds)
        if record.status in DENIED_STATUSES:
            _child(self._denied, http_denied, (record.client, status)).inc()


class UpstreamMetrics(Observer):
    """Upstream calls, retries, cache results, breakers and bulkheads."""

    def __init__(self) -> None:
        self._calls: dict[tuple[str, ...], Any] = {}
        self._cache: dict[tuple[str, ...], Any] = {}
        self._retries: dict[tuple[str, ...], Any] = {}
        self._bulkheads: dict[tuple[str, ...], Any] = {}
        self._breakers: dict[str, str] = {}  # upstream -> the state last set on the gauge

    def call_ended(self, record: CallRecord, started: Any) -> None:
        upstream = record.upstream
        _observer(self._calls, upstream_calls, (upstream, record.outcome))(record.seconds)
        _child(self._cache, upstream_cache, (upstream, record.cache))._value.inc(1)  # Counter.inc(), unchecked
        if upstream not in self._breakers:
            self._set_breaker(upstream, "closed")  # every breaker starts closed; the gauge shows it from the start

    def retried(self, upstream: str) -> None:
        _child(self._retries, upstream_retries, (upstream,)).inc()

    def breaker_changed(self, upstream: str, state: str) -> None:
        # Every call is a transition (the breakers report changes only); a new registry's breakers (settings
        # changed) start again from closed, so the last state seen here is not a reason to skip one.
        breaker_transitions.labels(upstream, state).inc()
        self._set_breaker(upstream, state)

    def bulkhead_changed(self, upstream: str, in_use: int) -> None:
        _child(self._bulkheads, bulkhead_in_use, (upstream,)).set(in_use)

    def bulkhead_rejected(self, upstream: str) -> None:
        bulkhead_rejections.labels(upstream).inc()

    def _set_breaker(self, upstream: str, state: str) -> None:
        self._breakers[upstream] = state
        for each in BREAKER_STATES:
            breaker_state.labels(upstream, each).set(1 if each == state else 0)


_installed: UpstreamMetrics | None = None


def install() -> UpstreamMetrics:
    """Record upstream metrics in this process (idempotent)."""
    global _installed
    if _installed is None:
        _installed = UpstreamMetrics()
        add_observer(_installed)
    return _installed


def uninstall() -> None:
    global _installed
    if _installed is not None:
        remove_observer(_installed)
        _installed = None


def exposition() -> bytes:
    """The text format: every worker's values with several workers, else this process's."""
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return _generate_latest(registry)
    return _generate_latest(REGISTRY)


async def metrics_view(request: HttpRequest) -> HttpResponseBase:
    """`GET /metrics` for a scraper with the token; 404 while no token is set (nothing is scrapable), 401 without it."""
    token: str | None = getattr(settings, "METRICS_TOKEN", None)
    if not token:
        return problem_response(404, "not_found", "There is nothing at this URL.")
    supplied = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(supplied, f"Bearer {token}".encode()):
        return problem_response(
            401,
            "not_authenticated" if not supplied else "authentication_failed",
            "The metrics need the scrape token (Authorization: Bearer <METRICS_TOKEN>).",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    if request.method not in ("GET", "HEAD"):
        allow = {"Allow": "GET, HEAD"}
        return problem_response(405, "method_not_allowed", "This path takes GET and HEAD.", headers=allow)
    # Reading the other workers' files is file I/O on the loop: a few small memory-mapped files, once per scrape
    # (every 15-60 s), cheaper than a thread hop and never on an API request's path.
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
