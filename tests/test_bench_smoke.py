"""`make bench` works from a fresh clone: a short smoke run of the harness (with the Python load generator and the
Python upstream simulator, as a machine without wrk or node has), and the two upstream simulators serve the same
payloads at both sizes. The figures are not judged here (benchmarks report, tests assert behaviour)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from benchmarks import upstream

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_benchmark_harness_runs_and_cleans_up() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/run.py",
            *("--only", "floor,fastapi,tributary", "--connections", "8", "--payloads", "5,40"),
            *("--curve-payloads", "none", "--runs", "1", "--duration", "1"),
            *("--python-load", "--python-upstream"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "TARGETS" in out
    assert "every process it started has stopped" in out
    for name in ("floor", "fastapi", "tributary"):
        assert f"\n  {name} " in out
    # Both payload sizes were served (the simulator reports each size's bytes) and measured for every implementation.
    assert "5 items (~0.4 KB)" in out
    assert "40 items (~2.3 KB)" in out
    for items in (5, 40):
        for name in ("floor", "fastapi", "tributary"):
            assert f"{name:<20} items={items:<2} calls=3" in out
    assert "tributary req/s >= 1.5x fastapi (5 items, 8 conns)" in out


async def _asgi_get(app: upstream.Upstream, path: str, query: bytes = b"") -> bytes:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": query}
    await app(scope, receive, send)
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http only
        return bytes(response.read())


async def test_python_simulator_switches_payload_size() -> None:
    app = upstream.Upstream(latency_ms=0)

    large = await _asgi_get(app, "/slow_data_1")
    switched = await _asgi_get(app, "/__items", b"n=5")
    small = await _asgi_get(app, "/slow_data_1")

    assert large == upstream.payload("slow_data_1", 0, 40)
    assert b'"items":5' in switched
    assert small == upstream.payload("slow_data_1", 0, 5)
    assert 300 < len(small) < 500 < 2000 < len(large) < 2500


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (make bench falls back to Python)")
def test_node_simulator_serves_the_python_simulators_bytes() -> None:
    port = _free_port()
    process = subprocess.Popen(
        ["node", str(ROOT / "benchmarks" / "upstream.js"), "--port", str(port), "--latency-ms", "50"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                _get(f"{base}/__stats")
                break
            except OSError:
                time.sleep(0.05)
        large = {path: _get(f"{base}/{path}") for path in upstream.PATHS}
        _get(f"{base}/__items?n=5")
        small = {path: _get(f"{base}/{path}") for path in upstream.PATHS}
        stats = _get(f"{base}/__stats")
    finally:
        process.terminate()
        process.wait(timeout=5)

    assert large == {path: upstream.payload(path, 50.0, 40) for path in upstream.PATHS}
    assert small == {path: upstream.payload(path, 50.0, 5) for path in upstream.PATHS}
    assert stats == b'{"requests":22,"items":5}'
