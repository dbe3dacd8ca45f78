"""`GET /metrics` from `python -m config.serve --workers 2`: whichever worker answers the scrape, it reports the
requests both served (prometheus_client's multiprocess mode), and a new start does not carry the last run's counts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-scrape-token"
REQUESTS = 40
ROUTE = "/api/external-data/"


@contextmanager
def two_workers(metrics_dir: Path) -> Iterator[str]:
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("UPSTREAM_", "DJANGO_", "DEMO_", "REDIS_", "OTEL_"))
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "PORT": str(port),
        "DEMO_LATENCY_MS": "0",
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "config.serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def serve(base: str, count: int) -> None:
    """`count` answered requests, each on a new connection: the kernel picks a worker per connection."""
    served, deadline = 0, time.monotonic() + 60
    while served < count:
        assert time.monotonic() < deadline, "the workers never answered"
        try:
            response = httpx.get(base + ROUTE, timeout=5)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        assert response.status_code == 200
        served += 1


def scrape(base: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert response.status_code == 200
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def route_count(samples: dict[str, list[tuple[dict[str, str], float]]]) -> float:
    return sum(
        value
        for labels, value in samples["tributary_http_request_duration_seconds_count"]
        if labels["route"] == ROUTE and labels["status"] == "200"
    )


@pytest.mark.e2e
def test_a_scrape_of_either_worker_reports_the_requests_both_served(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    with two_workers(metrics_dir) as base:
        serve(base, REQUESTS)

        scrapes = [scrape(base) for _ in range(6)]  # new connections: both workers answer some of them

        for samples in scrapes:
            assert route_count(samples) == REQUESTS  # every request, whichever worker served it or answers now
            per_worker = {labels["pid"]: value for labels, value in samples["tributary_worker_requests"]}
            assert len(per_worker) == 2  # the two workers (the supervisor serves nothing and is not listed)
            assert all(served > 0 for served in per_worker.values())  # and both served requests
        calls = {
            (labels["upstream"], labels["outcome"]): value
            for labels, value in scrapes[-1]["tributary_upstream_call_duration_seconds_count"]
        }
        assert calls[("slow", "miss")] + calls.get(("slow", "shared"), 0) == REQUESTS

    # A new start empties the directory: counts begin again from zero instead of adding to the last run's.
    assert list(metrics_dir.glob("*.db"))
    with two_workers(metrics_dir) as base:
        serve(base, 3)
        assert route_count(scrape(base)) == 3
