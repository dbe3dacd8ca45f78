"""What resilience looks like to a client of the product overview: Server-Timing, stale parts, cached answers."""

from __future__ import annotations

import re
from typing import Any


async def test_server_timing_has_one_entry_per_upstream_call(api: Any, demo: Any) -> None:
    demo()

    response = await api.get("/api/products/7/?currency=GBP")

    entries = {
        m.group(1): m.group(3)
        for m in re.finditer(r'(\w+);dur=([\d.]+);desc="([^"]*)"', response.headers["Server-Timing"])
    }
    assert entries == {
        "product": "catalog miss",
        "inventory": "inventory miss",
        "reviews": "reviews miss",
        "fx": "fx miss",
    }


async def test_server_timing_marks_skipped_and_failed_calls(api: Any, demo: Any) -> None:
    demo(faults={"reviews": "500"}, reviews={"RETRIES": "0"})

    timing = (await api.get("/api/products/7/")).headers["Server-Timing"]

    assert "reviews;dur=" in timing
    assert 'desc="reviews upstream_status"' in timing
    assert 'desc="fx skipped"' in timing  # no ?currency=: the call decided not to go out


async def test_failed_optional_part_is_answered_stale_within_the_window(api: Any, demo: Any) -> None:
    policy = {"STALE_IF_ERROR": "60", "RETRIES": "0"}
    demo(reviews=policy)
    fresh = (await api.get("/api/products/7/")).json()

    demo(faults={"reviews": "503"}, reviews=policy)  # same URL, the upstream now failing
    response = await api.get("/api/products/7/")

    body = response.json()
    assert response.status_code == 200
    assert body["reviews"] == fresh["reviews"]
    assert body["missing"] == []
    assert len(body["stale"]) == 1
    stale = body["stale"][0]
    assert (stale["source"], stale["upstream"], stale["code"]) == ("reviews", "reviews", "upstream_status")
    assert stale["age"] >= 0
    assert 'desc="reviews stale"' in response.headers["Server-Timing"]


async def test_without_stale_window_the_failed_part_is_missing(api: Any, demo: Any) -> None:
    demo(reviews={"RETRIES": "0"})
    await api.get("/api/products/7/")

    demo(faults={"reviews": "503"}, reviews={"RETRIES": "0"})
    body = (await api.get("/api/products/7/")).json()

    assert body["reviews"] is None
    assert body["stale"] == []
    assert [m["source"] for m in body["missing"]] == ["reviews"]


async def test_cache_ttl_answers_repeat_calls_without_the_upstream(api: Any, demo: Any) -> None:
    app = demo(fx={"CACHE_TTL": "60"})

    await api.get("/api/products/7/?currency=GBP")
    calls_before = app.stats.requests
    response = await api.get("/api/products/7/?currency=GBP")

    assert 'desc="fx hit"' in response.headers["Server-Timing"]
    assert app.stats.requests == calls_before + 3  # catalog, inventory, reviews: fx came from the cache
