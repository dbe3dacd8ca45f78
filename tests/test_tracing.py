"""Traces (config/tracing.py): one server span per request, one client span per upstream call with what the call did,
W3C trace context taken from the client and sent to the upstream, the OTLP exporter, off unless configured, and no
thread hop with tracing on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from benchmarks.otlp_collector import collector_in_thread
from config import tracing
from config.handler import TributaryASGIHandler
from tests.test_thread_hops import PATHS, HopCounter, hops  # noqa: F401 - `hops` is a fixture
from tests.upstream_double import json

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"


async def get(app: Any, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        return await client.get(path, headers=headers)


def traced_app(settings: Any, provider: TracerProvider) -> Any:
    """The service as config/asgi.py builds it when OTEL_* variables configure tracing, with `provider`."""
    settings.REQUEST_OBSERVERS = [*settings.REQUEST_OBSERVERS, "config.tracing.ServerSpanNames"]
    return tracing.instrument(TributaryASGIHandler(), provider)


@pytest.fixture
def traced(settings: Any) -> Iterator[tuple[Any, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield traced_app(settings, provider), exporter
    tracing.uninstall()
    provider.shutdown()


def by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans if span.kind == kind]


async def test_product_overview_is_a_server_span_with_one_child_span_per_upstream_call(
    demo: Any, traced: tuple[Any, InMemorySpanExporter]
) -> None:
    demo()
    app, exporter = traced

    response = await get(app, "/api/products/7/?currency=GBP")

    assert response.status_code == 200
    spans = exporter.get_finished_spans()
    [server] = by_kind(spans, SpanKind.SERVER)
    assert server.name == "GET /api/products/{id}/"  # the route, never the raw path
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/api/products/{id}/"
    assert server.attributes["tributary.client"] == "anonymous"
    calls = by_kind(spans, SpanKind.CLIENT)
    keys = ("tributary.upstream", "tributary.outcome", "tributary.cache", "tributary.retries")
    assert sorted((s.name, *((s.attributes or {})[key] for key in keys)) for s in calls) == [
        ("GET catalog", "catalog", "miss", "miss", 0),
        ("GET fx", "fx", "miss", "miss", 0),
        ("GET inventory", "inventory", "miss", "miss", 0),
        ("GET reviews", "reviews", "miss", "miss", 0),
    ]
    for call in calls:
        assert call.parent is not None
        assert call.parent.span_id == server.context.span_id
        assert call.context.trace_id == server.context.trace_id
    assert len(spans) == 5  # no per-message "http send"/"http receive" spans


async def test_the_upstream_receives_a_traceparent_carrying_the_clients_trace_id(
    scripted: Any, traced: tuple[Any, InMemorySpanExporter]
) -> None:
    upstream = scripted()
    app, exporter = traced

    response = await get(app, "/api/external-data/", {"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"})

    assert response.status_code == 200
    version, trace_id, parent_id, flags = upstream.headers[-1]["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    spans = exporter.get_finished_spans()
    [server] = by_kind(spans, SpanKind.SERVER)
    [call] = by_kind(spans, SpanKind.CLIENT)
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == CLIENT_SPAN_ID  # the client's span is our server span's parent
    assert parent_id == format(call.context.span_id, "016x")  # and our call's span is the upstream's parent


async def test_without_a_client_trace_the_upstream_gets_the_requests_own_trace(
    scripted: Any, traced: tuple[Any, InMemorySpanExporter]
) -> None:
    upstream = scripted()
    app, exporter = traced

    await get(app, "/api/external-data/")

    [server] = by_kind(exporter.get_finished_spans(), SpanKind.SERVER)
    assert upstream.headers[-1]["traceparent"].split("-")[1] == format(server.context.trace_id, "032x")


async def test_untraced_service_sends_no_traceparent(scripted: Any) -> None:
    """The control: the same call with tracing off (config/asgi.py's default) adds no trace header."""
    from config import asgi

    upstream = scripted()

    assert (await get(asgi.application, "/api/external-data/")).status_code == 200

    assert "traceparent" not in upstream.headers[-1]


async def test_a_failed_retried_call_is_an_error_span_with_its_code_and_retries(
    scripted: Any, traced: tuple[Any, InMemorySpanExporter]
) -> None:
    upstream = scripted(RETRIES="1", RETRY_BACKOFF="0.001")
    upstream.then(json(503), json(503))
    app, exporter = traced

    response = await get(app, "/api/external-data/")

    assert response.status_code == 502
    [call] = by_kind(exporter.get_finished_spans(), SpanKind.CLIENT)
    assert call.attributes is not None
    assert call.attributes["tributary.outcome"] == "upstream_status"
    assert call.attributes["tributary.retries"] == 1
    assert call.status.status_code == StatusCode.ERROR
    assert upstream.requests == 2
    assert upstream.headers[0]["traceparent"] == upstream.headers[1]["traceparent"]  # one call, one span


async def test_spans_leave_through_the_otlp_exporter_the_otel_variables_configure(
    scripted: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted()
    with collector_in_thread() as (url, collector):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        assert tracing.configured()
        provider = tracing.provider_from_environment()
        try:
            app = traced_app(settings, provider)
            assert (await get(app, "/api/external-data/")).status_code == 200
            assert provider.force_flush(10_000)
        finally:
            tracing.uninstall()
            provider.shutdown()

        spans = collector.span_list()
    assert sorted(span.name for _, span in spans) == ["GET /api/external-data/", "GET slow"]
    assert {resource["service.name"] for resource, _ in spans} == {"tributary"}


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_SERVICE_NAME": "tributary"}, False),  # naming the service configures no exporter
    ],
)
def test_tracing_is_off_unless_the_otel_variables_configure_an_exporter(environ: dict[str, str], on: bool) -> None:
    assert tracing.configured(environ) is on


@pytest.mark.parametrize(("path", "status"), PATHS)
async def test_no_thread_hop_with_tracing_on(
    demo: Any,
    hops: HopCounter,  # noqa: F811
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    status: int,
) -> None:
    """The production set-up (OTLP exporter, batch processor) around every request of the hop test, with metrics on
    as well (both signals at once)."""
    from config import metrics

    metrics.install()
    assert "config.metrics.RequestMetrics" in settings.REQUEST_OBSERVERS
    demo()
    with collector_in_thread(keep=False) as (url, collector):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        provider = tracing.provider_from_environment()
        try:
            app = traced_app(settings, provider)
            assert (await get(app, path)).status_code == status  # warm
            hops.hops.clear()

            for _ in range(3):
                assert (await get(app, path, {"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"})).status_code == (
                    status
                )

            assert hops.hops == []
            assert provider.force_flush(10_000)
        finally:
            tracing.uninstall()
            provider.shutdown()
        # The spans did leave (not the probes': /healthz is not traced).
        assert collector.spans >= (0 if path == "/healthz" else 4)


async def test_an_unsampled_request_records_no_span_and_passes_the_decision_upstream(
    scripted: Any, settings: Any
) -> None:
    """A client's traceparent with sampled=0 (parent-based sampling, the default): nothing is recorded here, and the
    upstream gets the same trace, still unsampled, so it does not record either."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    upstream = scripted()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(1.0)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = traced_app(settings, provider)
    try:
        response = await get(app, "/api/external-data/", {"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-00"})
    finally:
        tracing.uninstall()
        provider.shutdown()

    assert response.status_code == 200
    assert exporter.get_finished_spans() == ()
    _, trace_id, _, flags = upstream.headers[-1]["traceparent"].split("-")
    assert (trace_id, flags) == (TRACE_ID, "00")
