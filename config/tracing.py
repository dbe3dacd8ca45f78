"""OpenTelemetry traces: one server span per request, one client span per upstream call, W3C trace context both ways.

Off unless the standard variables configure it: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) set, or
`OTEL_TRACES_EXPORTER` set to `otlp` or `console`; `OTEL_SDK_DISABLED=true` turns it off whatever else is set. The
SDK reads the rest itself (`OTEL_SERVICE_NAME`, default `tributary`; `OTEL_RESOURCE_ATTRIBUTES`; the sampler,
`OTEL_TRACES_SAMPLER`/`_ARG`; the exporter's endpoint, headers, timeout; the batch processor's `OTEL_BSP_*`). Spans
leave through the OTLP exporter over HTTP/protobuf, in batches, from the SDK's own export thread: never from the
request's path.

- Server spans: opentelemetry-instrumentation-asgi wraps the whole ASGI application (config/asgi.py). It takes the
  client's `traceparent`, so our spans join the caller's trace. Its per-message "http send"/"http receive" spans are
  left out (noise, and a cost per message). `ServerSpanNames`, a request observer, renames the span after the
  route (`GET /api/products/{id}/`, not the raw path) and sets `http.route` and the client.
- Upstream spans: `UpstreamSpans`, an `upstreams.Observer`, opens a client span around each upstream call (cache,
  coalescing and retries included: one span per call, with `tributary.upstream`, `.outcome`, `.retries`, `.cache`)
  and injects it into each request the call sends (`traceparent`), so the upstream's spans are its children. We
  wrap our own call and do not instrument aiohttp's session: both would make two spans per call.

OpenTelemetry itself is imported only where traces are made (a provider built, a span observer created): with tracing
off, a worker never loads it (69 modules; tests/config/test_startup_imports.py). `configured()` and `EXPORTERS`, which
the settings read, need nothing of it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from api.observe import RequestObserver, RequestRecord
from upstreams import CallRecord, Observer, add_observer, remove_observer

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

__all__ = ["EXPORTERS", "ServerSpanNames", "UpstreamSpans", "configured", "instrument", "provider_from_environment"]

EXPORTERS = ("otlp", "console", "none")
SERVICE_NAME = "tributary"
# Probes and scrapes every few seconds would bury the traces that matter.
EXCLUDED_URLS = r"/healthz$,/readyz$,/metrics$"


def configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Do the OTEL_* variables ask for traces?"""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def provider_from_environment() -> Any:
    """A TracerProvider exporting as the OTEL_* variables say (the SDK reads them; settings validated the exporter)."""
    from opentelemetry.sdk.resources import SERVICE_NAME as SERVICE_NAME_KEY
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME_KEY: SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(attributes))
    exporter: SpanExporter
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def instrument(app: Any, provider: Any) -> Any:
    """`app` inside an ASGI server span per request, and upstream calls as its child spans, with `provider`."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    install(provider)
    return OpenTelemetryMiddleware(
        app, tracer_provider=provider, exclude_spans=["receive", "send"], excluded_urls=EXCLUDED_URLS
    )


class UpstreamSpans(Observer):
    """A client span around every upstream call; the requests it sends carry it (`traceparent`)."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import propagate, trace
        from opentelemetry.sdk.trace.sampling import ParentBased
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self._trace, self._propagate = trace, propagate
        self._client, self._status, self._error = SpanKind.CLIENT, Status, StatusCode.ERROR
        self.tracer = provider.get_tracer("tributary.upstreams")
        # With a parent-based sampler (the default), a request that is not sampled has no sampled child: its calls
        # need no span of their own, only its trace context passed on (sampled=0, so the upstream does not sample).
        self._follow_parent = isinstance(getattr(provider, "sampler", None), ParentBased)
        self._names: dict[str, str] = {}

    def call_started(self, upstream: str) -> Any:
        # Not made the current span (no context attach/detach per call): nothing under it needs to find it but
        # `outgoing`, which is handed it.
        if self._follow_parent:
            parent = self._trace.get_current_span()
            context = parent.get_span_context()
            if context.is_valid and not context.trace_flags.sampled:
                return parent  # not recording, not ours to end
        name = self._names.get(upstream) or self._names.setdefault(upstream, f"GET {upstream}")
        return self.tracer.start_span(name, kind=self._client, attributes={"tributary.upstream": upstream})

    def outgoing(self, headers: dict[str, str], started: Any) -> None:
        self._propagate.inject(
            headers, context=self._trace.set_span_in_context(started)
        )  # traceparent (+ tracestate, baggage)

    def call_ended(self, record: CallRecord, started: Any) -> None:
        span = started
        if not span.is_recording():
            return
        span.set_attributes(
            {"tributary.outcome": record.outcome, "tributary.cache": record.cache, "tributary.retries": record.retries}
        )
        if record.error is not None:
            span.set_attribute("error.type", record.error)
            span.set_status(self._status(self._error, record.error))
        span.end()


_installed: UpstreamSpans | None = None


def install(provider: Any) -> UpstreamSpans:
    """Trace upstream calls with `provider` (replacing a previous installation)."""
    global _installed
    uninstall()
    _installed = UpstreamSpans(provider)
    add_observer(_installed)
    return _installed


def uninstall() -> None:
    global _installed
    if _installed is not None:
        remove_observer(_installed)
        _installed = None


class ServerSpanNames(RequestObserver):
    """Name the request's server span after its route, with `http.route` and the caller's client name."""

    def __init__(self) -> None:
        from opentelemetry import trace

        self._current_span = trace.get_current_span

    def finished(self, request: HttpRequest, response: HttpResponseBase | None, record: RequestRecord) -> None:
        span = self._current_span()
        if span.is_recording():
            span.update_name(f"{record.method} {record.route}")
            span.set_attribute("http.route", record.route)
            span.set_attribute("tributary.client", record.client)
