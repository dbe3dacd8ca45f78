"""An OpenTelemetry collector double: OTLP over HTTP (protobuf) on 127.0.0.1, counting what it receives.

It accepts `POST /v1/traces` (an `ExportTraceServiceRequest`, as the SDK's OTLP/HTTP exporter sends it), decodes it,
keeps the spans (for tests) or only counts them (for the benchmark), and answers an empty success. `GET /count`
answers the number of spans received so far. `make bench` runs it as a process beside Tributary with tracing on;
tests/test_tracing.py serves it in a thread (`collector_in_thread`).

    .venv/bin/python benchmarks/otlp_collector.py --port 4318
"""

from __future__ import annotations

import argparse
import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class Collector:
    """What was received: span count, and (when `keep`) the decoded requests."""

    def __init__(self, *, keep: bool = True) -> None:
        self.keep = keep
        self.spans = 0
        self.requests: list[ExportTraceServiceRequest] = []
        self.lock = threading.Lock()

    def receive(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        count = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        with self.lock:
            self.spans += count
            if self.keep:
                self.requests.append(request)

    def span_list(self) -> list[tuple[dict[str, Any], Any]]:
        """Every span received, with its resource's attributes."""
        found = []
        with self.lock:
            for request in self.requests:
                for resource in request.resource_spans:
                    attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
                    found.extend((attributes, span) for scope in resource.scope_spans for span in scope.spans)
        return found


def _handler(collector: Collector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            collector.receive(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def do_GET(self) -> None:
            body = str(collector.spans).encode()
            self.send_response(200 if self.path == "/count" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def collector_in_thread(*, keep: bool = True) -> Iterator[tuple[str, Collector]]:
    """A collector on a free loopback port, served from a daemon thread: yields its base URL and its record."""
    collector = Collector(keep=keep)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(collector))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", collector
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(Collector(keep=False)))
    server.serve_forever()


if __name__ == "__main__":
    main()
