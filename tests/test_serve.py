"""`python -m config.serve --workers 2`: two worker processes serve one port (a SO_REUSEPORT socket each), and
SIGTERM stops them all cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


def worker_processes(pid: int) -> set[int]:
    """The worker processes `pid` started (not multiprocessing's resource tracker, which exits on its own)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    children = {int(p) for p in path.read_text().split()} if path.exists() else set()
    return {child for child in children if "spawn_main" in _cmdline(child)}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


@pytest.mark.e2e
def test_two_reuseport_workers_serve_and_stop_on_sigterm() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPSTREAM_", "DJANGO_", "DEMO_", "REDIS_"))}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings.local", "PORT": str(port), "DEMO_LATENCY_MS": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "config.serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        served = 0
        deadline = time.monotonic() + 30
        while served < 20:
            assert time.monotonic() < deadline, "the workers never answered"
            try:  # a new connection each time: the kernel picks a worker per connection
                response = httpx.get(f"http://127.0.0.1:{port}/api/external-data/", timeout=5)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            assert response.status_code == 200
            served += 1
        workers = worker_processes(process.pid)
        assert len(workers) == 2

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=20) == 0
        assert not any(alive(pid) for pid in workers)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
