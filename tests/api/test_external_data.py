"""/api/external-data/ and /api/multiple-external-data/ over real loopback sockets: concurrency, request ids,
unreachable and slow upstreams, the deadline, and a client that goes away."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from tests.api.helpers import assert_problem
from tests.servers import closed_port_url, serve_in_thread


async def test_external_data_returns_the_validated_payload(api: Any, demo: Any) -> None:
    demo()

    response = await api.get("/api/external-data/")

    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "slow_data"
    assert len(body["items"]) == 5


async def test_multiple_external_data_calls_its_upstreams_concurrently(api: Any, demo: Any) -> None:
    app = demo(latency_ms=200)  # slow_data_1..3 answer after 200, 300 and 400 ms: 900 ms in sequence
    loop = asyncio.get_running_loop()

    started = loop.time()
    response = await api.get("/api/multiple-external-data/")
    elapsed = loop.time() - started

    assert response.status_code == 200
    assert [r["source"] for r in response.json()["results"]] == ["slow_data_1", "slow_data_2", "slow_data_3"]
    # The proof: all three requests were in flight at the same moment on the upstream's side...
    assert app.stats.max_in_flight == 3
    # ...so the whole took about the slowest call (400 ms), well under the sum (900 ms).
    assert elapsed < 0.9


async def test_request_id_is_forwarded_to_every_upstream_and_returned(api: Any, demo: Any) -> None:
    app = demo()

    response = await api.get("/api/multiple-external-data/", headers={"X-Request-ID": "trace-42"})

    assert response.headers["X-Request-ID"] == "trace-42"
    assert [rid for _, rid in app.stats.request_ids] == ["trace-42"] * 3


@pytest.mark.parametrize("supplied", [None, "x" * 200, "bad id\twith tab"])
async def test_missing_or_unsafe_request_id_is_replaced_by_a_generated_one(
    api: Any, demo: Any, supplied: str | None
) -> None:
    app = demo()
    headers = {"X-Request-ID": supplied} if supplied else {}

    response = await api.get("/api/external-data/", headers=headers)

    rid = response.headers["X-Request-ID"]
    assert rid != supplied
    assert len(rid) == 32
    assert int(rid, 16) >= 0
    assert list(app.stats.request_ids) == [("/slow/slow_data", rid)]


async def test_unreachable_upstream_is_503(api: Any, demo: Any) -> None:
    demo(slow={"URL": closed_port_url()})

    body = assert_problem(await api.get("/api/external-data/"), 503, "upstream_unreachable")

    assert body["upstream"] == "slow"


async def test_upstream_over_its_timeout_is_504(api: Any, demo: Any) -> None:
    demo(faults={"slow": "timeout"}, slow={"TIMEOUT": "0.2", "CONNECT_TIMEOUT": "0.2"})

    body = assert_problem(await api.get("/api/external-data/"), 504, "upstream_timeout")

    assert body["upstream"] == "slow"


async def test_request_deadline_is_504_and_abandons_the_upstream_calls(api: Any, demo: Any, settings: Any) -> None:
    app = demo(faults={"slow": "timeout"})
    settings.AGGREGATE_DEADLINE = 0.2

    assert_problem(await api.get("/api/multiple-external-data/"), 504, "deadline_exceeded")

    # The three hanging upstream requests were cancelled, so the upstream sees their connections close.
    await _eventually(lambda: app.stats.disconnects == 3)
    assert app.stats.in_flight == 0


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("500", 502, "upstream_status"),
        ("invalid_json", 502, "upstream_invalid_json"),
        ("wrong_shape", 502, "upstream_invalid_payload"),
        ("html", 502, "upstream_bad_content_type"),
        ("huge", 502, "upstream_body_too_large"),
        ("reset", 502, "upstream_protocol_error"),
    ],
)
async def test_misbehaving_upstream_maps_to_an_honest_status(
    api: Any, demo: Any, fault: str, status: int, code: str
) -> None:
    demo(faults={"slow": fault})

    body = assert_problem(await api.get("/api/external-data/"), status, code)

    assert body["upstream"] == "slow"


async def test_client_disconnect_cancels_the_upstream_calls(demo: Any) -> None:
    """Under a real ASGI server: the client hangs up mid-request and the upstream requests are abandoned too."""
    from config.asgi import application

    app = demo(faults={"slow": "timeout"})
    with serve_in_thread(application, lifespan="on") as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"GET /api/multiple-external-data/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await _eventually(lambda: app.stats.in_flight == 3)
        # Socket closed by the client: the service must cancel its three upstream requests.
        await _eventually(lambda: app.stats.disconnects == 3)
        assert app.stats.in_flight == 0


async def _eventually(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
