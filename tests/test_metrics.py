"""Prometheus metrics (config/metrics.py) through the public surface: requests by route pattern and status, upstream
calls by outcome, retries, cache results, breakers, bulkheads, denied requests per client, requests in flight; the
token-guarded `/metrics` (not in the public schema); and no thread hop with metrics on.

One process here (no PROMETHEUS_MULTIPROC_DIR): values are read from prometheus_client's registry, as differences
(the counters live as long as the test process). tests/e2e/test_metrics_workers.py scrapes two real workers."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml
from django.http import HttpRequest, HttpResponse
from django.urls import path
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from config import metrics
from tests.asgi_scope import http_scope
from tests.test_thread_hops import PATHS, HopCounter, hops  # noqa: F401 - `hops` is a fixture
from tests.upstream_double import json
from upstreams import UpstreamSaturated
from upstreams.bulkhead import Bulkhead
from upstreams.config import BulkheadPolicy

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "scrape-token-for-tests"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """Sample values now, to compare with later: `delta.of(name, **labels)`."""

    def __init__(self) -> None:
        samples = [sample for family in REGISTRY.collect() for sample in family.samples]
        self.before = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}

    def of(self, name: str, **labels: str) -> float:
        return value(name, **labels) - self.before.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(autouse=True)
def upstream_metrics() -> None:
    """The upstream observer, as config/asgi.py installs it at start-up (it stays: config.asgi keeps it too)."""
    metrics.install()


async def get(api: Any, url: str, **headers: str) -> Any:
    return await api.get(url, headers=headers)


# --- Requests ------------------------------------------------------------------------------------------------------


async def test_requests_are_counted_by_route_pattern_and_status_never_by_raw_path(api: Any, demo: Any) -> None:
    demo()
    delta = Delta()

    for product in (7, 8, 9):
        assert (await api.get(f"/api/products/{product}/")).status_code == 200
    assert (await api.get("/api/products/7/?currency=nope")).status_code == 400
    assert (await api.get("/no/such/path/123")).status_code == 404

    count = "tributary_http_request_duration_seconds_count"
    assert delta.of(count, route="/api/products/{id}/", method="GET", status="200") == 3
    assert delta.of(count, route="/api/products/{id}/", method="GET", status="400") == 1
    assert delta.of(count, route="unmatched", method="GET", status="404") == 1
    routes = {s.labels["route"] for m in REGISTRY.collect() for s in m.samples if "route" in s.labels}
    assert not any(re.search(r"/\d+/", route) for route in routes)  # no id ever becomes a label value
    assert delta.of("tributary_http_request_duration_seconds_bucket", le="+Inf", **_route200()) == 3


def _route200() -> dict[str, str]:
    return {"route": "/api/products/{id}/", "method": "GET", "status": "200"}


IN_FLIGHT: list[float] = []


async def in_flight_view(request: HttpRequest) -> HttpResponse:
    IN_FLIGHT.append(value("tributary_http_requests_in_flight"))
    return HttpResponse(b"{}", content_type="application/json")


async def denying_view(request: HttpRequest) -> HttpResponse:
    # What DRF does for an authenticated request: the Caller (api/clients/identity.py) lands on request.auth.
    status = int(request.GET["status"])
    if request.GET.get("client"):
        request.auth = SimpleNamespace(client_name=request.GET["client"])  # type: ignore[attr-defined]
    return HttpResponse(b"{}", status=status, content_type="application/json")


SLOW_VIEW_STARTED = asyncio.Event()


async def slow_view(request: HttpRequest) -> HttpResponse:
    SLOW_VIEW_STARTED.set()
    await asyncio.sleep(30)  # cancelled long before: the client goes away
    return HttpResponse(b"{}", content_type="application/json")


urlpatterns = [path("in-flight/", in_flight_view), path("deny/", denying_view), path("slow/", slow_view)]


async def test_requests_in_flight_count_the_request_being_served(api: Any, settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    IN_FLIGHT.clear()
    idle = value("tributary_http_requests_in_flight")

    await api.get("/in-flight/")

    seen = IN_FLIGHT
    assert seen == [idle + 1]
    assert value("tributary_http_requests_in_flight") == idle


async def test_a_request_whose_client_goes_away_is_counted_499_and_leaves_the_in_flight_gauge(settings: Any) -> None:
    from config.handler import TributaryASGIHandler

    settings.ROOT_URLCONF = __name__
    SLOW_VIEW_STARTED.clear()
    idle = value("tributary_http_requests_in_flight")
    delta = Delta()
    messages = [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await SLOW_VIEW_STARTED.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope("GET", "/slow/", server=("127.0.0.1", 80))
    await asyncio.wait_for(TributaryASGIHandler()(scope, receive, send), 10)

    assert sent == []  # nobody to answer
    assert value("tributary_http_requests_in_flight") == idle
    count = "tributary_http_request_duration_seconds_count"
    assert delta.of(count, route="/slow/", method="GET", status="499") == 1


async def test_unauthenticated_forbidden_and_rate_limited_answers_are_counted_per_client(
    api: Any, settings: Any
) -> None:
    settings.ROOT_URLCONF = __name__
    delta = Delta()

    for query in ("status=429&client=acme", "status=429&client=acme", "status=403&client=acme", "status=401"):
        await api.get(f"/deny/?{query}")
    await api.get("/deny/?status=200&client=acme")  # allowed: not counted here
    await api.get("/deny/?status=404&client=acme")

    denied = "tributary_http_denied_requests_total"
    assert delta.of(denied, client="acme", status="429") == 2
    assert delta.of(denied, client="acme", status="403") == 1
    assert delta.of(denied, client="anonymous", status="401") == 1
    assert delta.of(denied, client="acme", status="404") == 0


# --- Upstream calls --------------------------------------------------------------------------------------------------


async def test_upstream_calls_by_outcome_and_cache_result(api: Any, demo: Any) -> None:
    demo(catalog={"CACHE_TTL": "60"}, reviews={"CACHE_TTL": "0"})
    delta = Delta()

    await api.get("/api/products/7/")
    await api.get("/api/products/7/")

    calls = "tributary_upstream_call_duration_seconds_count"
    assert delta.of(calls, upstream="catalog", outcome="miss") == 1
    assert delta.of(calls, upstream="catalog", outcome="hit") == 1
    assert delta.of(calls, upstream="reviews", outcome="miss") == 2
    cache = "tributary_upstream_cache_total"
    assert delta.of(cache, upstream="catalog", result="hit") == 1
    assert delta.of(cache, upstream="catalog", result="miss") == 1
    assert delta.of(cache, upstream="reviews", result="miss") == 2


async def test_stale_answers_are_counted(api: Any, demo: Any) -> None:
    policy = {"STALE_IF_ERROR": "60", "RETRIES": "0"}
    demo(reviews=policy)
    await api.get("/api/products/7/")
    demo(faults={"reviews": "503"}, reviews=policy)
    delta = Delta()

    assert (await api.get("/api/products/7/")).json()["stale"]

    assert delta.of("tributary_upstream_call_duration_seconds_count", upstream="reviews", outcome="stale") == 1
    assert delta.of("tributary_upstream_cache_total", upstream="reviews", result="stale") == 1


async def test_retries_are_counted_and_a_call_that_needed_them_is_retried(api: Any, scripted: Any) -> None:
    upstream = scripted(RETRIES="2", RETRY_BACKOFF="0.001")
    upstream.then(json(503), json(503))  # then the default: 200
    delta = Delta()

    assert (await api.get("/api/external-data/")).status_code == 200

    assert upstream.requests == 3
    assert delta.of("tributary_upstream_retries_total", upstream="slow") == 2
    assert delta.of("tributary_upstream_call_duration_seconds_count", upstream="slow", outcome="retried") == 1


async def test_failed_calls_are_counted_by_error_code(api: Any, scripted: Any) -> None:
    scripted(RETRIES="0").then(json(500))
    delta = Delta()

    assert (await api.get("/api/external-data/")).status_code == 502

    assert delta.of("tributary_upstream_call_duration_seconds_count", upstream="slow", outcome="upstream_status") == 1


async def test_breaker_state_and_transitions(api: Any, scripted: Any) -> None:
    upstream = scripted(RETRIES="0", BREAKER_FAILURES="2", BREAKER_COOLDOWN="60")
    upstream.default = json(500)
    delta = Delta()

    statuses = [(await api.get("/api/external-data/")).status_code for _ in range(3)]

    assert statuses == [502, 502, 503]  # the third fails fast: circuit_open
    state = "tributary_upstream_breaker_state"
    assert value(state, upstream="slow", state="open") == 1
    assert value(state, upstream="slow", state="closed") == 0
    assert delta.of("tributary_upstream_breaker_transitions_total", upstream="slow", state="open") == 1
    assert delta.of("tributary_upstream_call_duration_seconds_count", upstream="slow", outcome="circuit_open") == 1


async def test_bulkhead_slots_in_use_and_rejections() -> None:
    bulkhead = Bulkhead("metered", BulkheadPolicy(max_concurrency=1, queue_timeout=0.01))
    delta = Delta()

    await bulkhead.acquire()
    in_use = value("tributary_upstream_bulkhead_in_use", upstream="metered")
    with pytest.raises(UpstreamSaturated):
        await bulkhead.acquire()
    bulkhead.release()

    assert in_use == 1
    assert value("tributary_upstream_bulkhead_in_use", upstream="metered") == 0
    assert delta.of("tributary_upstream_bulkhead_rejections_total", upstream="metered") == 1


# --- GET /metrics ----------------------------------------------------------------------------------------------------


async def test_metrics_answer_404_while_no_token_is_set(api: Any, settings: Any) -> None:
    settings.METRICS_TOKEN = None

    response = await api.get("/metrics", headers={"Authorization": "Bearer "})

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "not_authenticated"), ("Bearer wrong", "authentication_failed"), (TOKEN, "authentication_failed")],
)
async def test_metrics_need_the_bearer_token(api: Any, settings: Any, authorization: str | None, code: str) -> None:
    settings.METRICS_TOKEN = TOKEN

    response = await api.get("/metrics", headers={"Authorization": authorization} if authorization else {})

    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"tributary_" not in response.content


async def test_metrics_in_the_prometheus_text_format_for_the_token(api: Any, demo: Any, settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    demo()
    await api.get("/api/products/7/?currency=GBP")

    response = await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(response.content.decode())}
    for name in (
        "tributary_http_request_duration_seconds",
        "tributary_http_requests_in_flight",
        "tributary_http_denied_requests",
        "tributary_upstream_call_duration_seconds",
        "tributary_upstream_retries",
        "tributary_upstream_cache",
        "tributary_upstream_breaker_state",
        "tributary_upstream_breaker_transitions",
        "tributary_upstream_bulkhead_in_use",
        "tributary_upstream_bulkhead_rejections",
    ):
        assert name in families, name
    fx = [s for s in families["tributary_upstream_call_duration_seconds"].samples if s.labels.get("upstream") == "fx"]
    assert fx


def test_metrics_are_not_an_operation_of_the_public_schema() -> None:
    schema = yaml.safe_load((ROOT / "openapi" / "schema.yaml").read_text())

    assert not [p for p in schema["paths"] if "metrics" in p]


# --- No thread hop ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "status"), [*PATHS, ("/metrics", 200)])
async def test_no_thread_hop_with_metrics_on(
    demo: Any,
    hops: HopCounter,  # noqa: F811
    settings: Any,
    path: str,
    status: int,
) -> None:
    from config import asgi

    settings.METRICS_TOKEN = TOKEN
    demo()
    assert "config.metrics.RequestMetrics" in settings.REQUEST_OBSERVERS  # on by default
    # The scrape token only where it belongs: elsewhere a bearer token is an API key.
    headers = {"Authorization": f"Bearer {TOKEN}"} if path == "/metrics" else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi.application), base_url="http://x") as client:
        client.headers.update(headers | {"Host": "127.0.0.1"})
        assert (await client.get(path)).status_code == status  # warm
        hops.hops.clear()
        labels = {"route": _route(path), "method": "GET", "status": str(status)}
        before = value("tributary_http_request_duration_seconds_count", **labels)

        for _ in range(3):
            assert (await client.get(path)).status_code == status

    assert hops.hops == []
    assert value("tributary_http_request_duration_seconds_count", **labels) - before == 3  # and they were measured


def _route(path: str) -> str:
    return {
        "/api/multiple-external-data/": "/api/multiple-external-data/",
        "/api/products/7/?currency=GBP": "/api/products/{id}/",
        "/api/products/?page=2&page_size=5": "/api/products/",
        "/api/products/99999/": "/api/products/{id}/",
        "/api/products/7/?currency=nope": "/api/products/{id}/",
        "/healthz": "/healthz",
        "/metrics": "/metrics",
    }[path]


async def test_shared_breaker_transitions_are_counted_once_by_the_process_that_made_them(redis_url: str) -> None:
    """Two processes' Redis breakers for one upstream (as two workers would have): the circuit opens once, though
    both see the faults, and the probe's process counts the half-open and closed transitions."""
    from upstreams import BreakerPolicy, UpstreamConnectError
    from upstreams.redis_breaker import RedisCircuitBreaker, RedisClients

    policy = BreakerPolicy(failures=2, failure_ratio=1.0, min_calls=100, window=30, cooldown=0.05)
    clients = [RedisClients(redis_url), RedisClients(redis_url)]
    a, b = (RedisCircuitBreaker("shared-up", policy, clients=c, probe_ttl=5) for c in clients)
    delta = Delta()
    try:
        admitted = [(breaker, await breaker.acquire()) for breaker in (a, b, a)]  # all three while closed
        for breaker, probe in admitted:  # the second fault opens it; the third is a straggler's
            await breaker.report(UpstreamConnectError("shared-up"), probe=probe)
        await asyncio.sleep(policy.cooldown + 0.05)
        probe = await b.acquire()
        await b.report(None, probe=probe)
    finally:
        for c in clients:
            await c.aclose()

    transitions = "tributary_upstream_breaker_transitions_total"
    assert probe is True
    assert delta.of(transitions, upstream="shared-up", state="open") == 1
    assert delta.of(transitions, upstream="shared-up", state="half_open") == 1
    assert delta.of(transitions, upstream="shared-up", state="closed") == 1
    assert value("tributary_upstream_breaker_state", upstream="shared-up", state="closed") == 1


# --- Several workers: the metrics directory (config/serve.py) -----------------------------------------------------


def test_serve_empties_the_metrics_directory_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from config import serve

    (tmp_path / "counter_4242.db").write_bytes(b"last run")
    (tmp_path / "keep.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    assert serve._prepare_metrics_dir(2) is None  # given: not ours to remove at exit

    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_serve_makes_a_metrics_directory_for_several_workers_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from config import serve

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert serve._prepare_metrics_dir(1) is None
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ

    made = serve._prepare_metrics_dir(2)

    assert made is not None
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == made
    assert Path(made).is_dir()
    Path(made).rmdir()


def test_a_dead_workers_live_gauges_leave_and_its_counts_stay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from config import serve

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("gauge_livesum_4242.db", "gauge_liveall_4242.db", "counter_4242.db", "gauge_livesum_4343.db"):
        (tmp_path / name).write_bytes(b"")

    serve._mark_dead(4242)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_4242.db", "gauge_livesum_4343.db"]
