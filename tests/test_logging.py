"""Logs (config/logging.py, api/logging.py): one structured access line per request, request and trace ids on every
line, errors with their traceback in the same line format, and LOG_FORMAT choosing JSON or readable lines."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient
from django.urls import path
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from config import tracing
from config.handler import TributaryASGIHandler
from config.logging import logging_settings
from upstreams import declared

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def log_format(settings: Any, capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Configure logging as the settings would for a LOG_FORMAT; returns a function giving the lines written since."""

    def configure(log_format: str) -> Any:
        logging.config.dictConfig(logging_settings(log_format, level="INFO"))  # its handler writes to captured stderr
        capsys.readouterr()

        def lines() -> list[str]:
            return [line for line in capsys.readouterr().err.splitlines() if line.strip()]

        return lines

    yield configure
    logging.config.dictConfig(settings.LOGGING)


def records(lines: list[str], logger: str) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    return [entry for entry in parsed if entry["logger"] == logger]


async def test_each_request_writes_one_json_access_line(api: Any, demo: Any, log_format: Any) -> None:
    demo(faults={"reviews": "502"}, reviews={"RETRIES": "1", "RETRY_BACKOFF": "0.001"})
    lines = log_format("json")

    await api.get("/api/products/7/?currency=GBP", headers={"X-Request-ID": "req-123"})
    await api.get("/api/products/8/")

    first, second = records(lines(), "tributary.access")
    assert first["level"] == "INFO"
    assert first["time"].endswith("Z")
    assert first["request_id"] == "req-123"
    assert first["trace_id"] == "-"  # no tracing configured
    assert (first["method"], first["route"], first["path"], first["status"]) == (
        "GET",
        "/api/products/{id}/",
        "/api/products/7/",
        200,
    )
    assert first["client"] == "anonymous"
    assert isinstance(first["duration_ms"], float)
    summary = dict(part.split("=", 1) for part in first["upstreams"].split())
    assert set(summary) == {"catalog", "inventory", "reviews", "fx"}
    assert summary["catalog"].startswith("miss:")
    assert summary["reviews"].startswith("upstream_status(1):")  # failed after one retry
    assert first["message"].startswith("GET /api/products/{id}/ 200 ")
    assert second["path"] == "/api/products/8/"
    assert second["request_id"] != "req-123"


async def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the view is broken")


urlpatterns = [path("boom/", boom)]


async def test_an_error_keeps_its_traceback_in_the_same_json_line(api: Any, settings: Any, log_format: Any) -> None:
    settings.ROOT_URLCONF = __name__
    lines = log_format("json")

    client = AsyncClient(raise_request_exception=False)  # answer as a server would, rather than re-raise

    response = await client.get("/boom/", headers={"X-Request-ID": "req-boom"})

    assert response.status_code == 500
    entries = [json.loads(line) for line in lines()]
    [error] = [entry for entry in entries if "traceback" in entry]
    assert error["level"] == "ERROR"
    assert error["request_id"] == "req-boom"
    assert error["error"] == "RuntimeError"
    assert error["traceback"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: the view is broken" in error["traceback"]
    [access] = [entry for entry in entries if entry["logger"] == "tributary.access"]
    assert (access["status"], access["request_id"], access["route"]) == (500, "req-boom", "/boom/")


async def test_readable_lines_carry_the_same_facts(api: Any, demo: Any, log_format: Any) -> None:
    demo()
    lines = log_format("readable")

    await api.get("/api/external-data/", headers={"X-Request-ID": "req-read"})

    [access] = [line for line in lines() if "tributary.access" in line]
    assert " INFO tributary.access [req-read -] GET /api/external-data/ 200 " in access
    assert access.endswith("client=anonymous upstreams=" + access.split("upstreams=")[1])
    assert "slow=miss:" in access


async def test_lines_written_while_tracing_carry_the_trace_id(scripted: Any, settings: Any, log_format: Any) -> None:
    scripted()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings.REQUEST_OBSERVERS = [*settings.REQUEST_OBSERVERS, "config.tracing.ServerSpanNames"]
    app = tracing.instrument(TributaryASGIHandler(), provider)
    lines = log_format("json")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            await client.get("/api/external-data/")
    finally:
        tracing.uninstall()
        provider.shutdown()

    [server] = [span for span in exporter.get_finished_spans() if span.kind == SpanKind.SERVER]
    [access] = records(lines(), "tributary.access")
    assert access["trace_id"] == format(server.context.trace_id, "032x")


def settings_in_subprocess(module: str, **environ: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPSTREAM_", "DJANGO_", "LOG_", "OTEL_"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": module,
        "DJANGO_SECRET_KEY": "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "example.test",
        **{f"UPSTREAM_{name.upper()}_URL": "http://127.0.0.1:9" for name in declared.names()},
        **environ,
    }
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'format': s.LOG_FORMAT, "
        "'formatter': s.LOGGING['handlers']['console']['formatter']}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    ("module", "environ", "expected"),
    [
        ("config.settings.production", {}, "json"),
        ("config.settings.local", {}, "readable"),
        ("config.settings.production", {"LOG_FORMAT": "readable"}, "readable"),
        ("config.settings.local", {"LOG_FORMAT": "json"}, "json"),
    ],
)
def test_log_format_is_json_in_production_readable_locally_and_log_format_switches(
    module: str, environ: dict[str, str], expected: str
) -> None:
    assert settings_in_subprocess(module, **environ) == {"format": expected, "formatter": expected}


def test_an_unknown_log_format_is_a_configuration_problem() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPSTREAM_", "DJANGO_", "LOG_"))}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings.local", "LOG_FORMAT": "xml"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "LOG_FORMAT='xml' must be one of json, readable." in result.stderr + result.stdout
