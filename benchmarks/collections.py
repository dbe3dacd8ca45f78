"""`make bench-collections`: a collection read with 20 products, next to the same composition without its database
part, under the same load.

The collection endpoint (`GET /api/collections/<id>/`) composes one database read with 20 catalog calls, 20 review
calls and one inventory batch call (api/collections/composition.py). `/bench/collection-without-database/<id>/`
(benchmarks/collections_urls.py) runs the same aggregate with the read replaced by a constant: the difference is what
the database part costs. Both are served by one uvicorn worker (uvloop, httptools; pinned to core 0 when `taskset`
exists), with an API key (keys required) and coalescing off, against the demo upstreams (`manage.py demo_upstreams`,
`--latency-ms`, default 50), on PostgreSQL (started here with the test suite's tests/postgres_server.py; the read is
native async, api/database.py) and on SQLite (a file; one thread hop). wrk runs on core 1 with the demo upstreams.

Reported per database, endpoint and connection count: requests/s, p50 latency and the worker's CPU time per request
(utime + stime from /proc), medians over `--rounds` interleaved runs of `--duration` seconds. The end-to-end figures
are bounded by the demo upstreams (41 calls per request on one process): compare the two endpoints within a round.

    .venv/bin/python benchmarks/collections.py [--databases postgres,sqlite] [--rounds 3] [--duration 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PYTHON = sys.executable
UPSTREAMS = ("slow", "catalog", "inventory", "reviews", "fx")
PRODUCTS = 20
CONNECTIONS = (8, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="postgres,sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--latency-ms", type=int, default=50, help="the demo upstreams' base latency")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 2
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is required (apt-get install wrk)")
    for name in args.databases.split(","):
        with database(name) as url:
            report(name, measure(url, args))


@contextmanager
def database(name: str) -> Iterator[str]:
    if name == "postgres":
        from tests.postgres_server import postgres_server

        with postgres_server() as url:
            yield url
    elif name == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.sqlite3"
    else:
        raise SystemExit(f"unknown database {name!r}: postgres or sqlite")


def measure(database_url: str, args: argparse.Namespace) -> dict[tuple[str, int], list[tuple[float, float, float]]]:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("UPSTREAM_", "DJANGO_", "DEMO_", "DATABASE_"))}
    demo_port = free_port()
    env = {
        **base_env,
        "DJANGO_SETTINGS_MODULE": "benchmarks.collections_settings",
        "DEMO_UPSTREAMS": "false",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url,
        "API_KEYS_REQUIRED": "true",
        "RATE_LIMIT": "1000000",
        **{f"UPSTREAM_{name.upper()}_URL": f"http://127.0.0.1:{demo_port}/{name}" for name in UPSTREAMS},
        **{f"UPSTREAM_{name.upper()}_COALESCE": "false" for name in UPSTREAMS},
    }
    manage(["migrate", "--no-input", "--verbosity", "0"], env)
    key = manage(["create_api_key", f"bench-{time.time_ns()}", "--name", "bench"], env).strip()
    headers = {"Authorization": f"Bearer {key}"}
    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    demo = ["manage.py", "demo_upstreams", "--port", str(demo_port), "--latency-ms", str(args.latency_ms)]
    with running(
        [*pinned(1), PYTHON, *demo], {**base_env, "DJANGO_SETTINGS_MODULE": "config.settings.local"}, demo_port
    ):
        for _ in range(args.rounds):
            port = free_port()
            uvicorn = ["-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
            uvicorn += ["--lifespan", "on", "--no-access-log", "--log-level", "warning", "--loop", "uvloop"]
            with running([*pinned(0), PYTHON, *uvicorn, "--http", "httptools"], env, port) as server:
                base = f"http://127.0.0.1:{port}"
                items = [{"product_id": product_id} for product_id in range(1, PRODUCTS + 1)]
                created = request(f"{base}/api/collections/", headers, {"name": "bench", "items": items})
                paths = {
                    "with-db": f"/api/collections/{created['id']}/",
                    "without-db": f"/bench/collection-without-database/{created['id']}/",
                }
                for path in paths.values():
                    body = request(base + path, headers)
                    assert body["missing"] == [], body
                    assert len(body["items"]) == PRODUCTS, body  # type: ignore[arg-type]
                    wrk(base + path, key, connections=8, duration=2)  # warm
                for connections in CONNECTIONS:
                    for label, path in paths.items():
                        before = cpu_seconds(server.pid)
                        output = wrk(base + path, key, connections=connections, duration=args.duration)
                        spent = cpu_seconds(server.pid) - before
                        results.setdefault((label, connections), []).append(parse(output, spent))
    return results


def report(name: str, results: dict[tuple[str, int], list[tuple[float, float, float]]]) -> None:
    print(f"\n{name}: GET a collection of {PRODUCTS} products (1 read + 41 upstream calls), medians")
    print(f"  {'endpoint':12s} {'conn':>5s} {'req/s':>8s} {'p50 ms':>8s} {'CPU us/req':>11s}  runs (req/s)")
    for (label, connections), runs in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        ordered = sorted(runs)
        rps, p50, cpu = ordered[len(ordered) // 2]
        print(f"  {label:12s} {connections:5d} {rps:8.1f} {p50:8.1f} {cpu:11.0f}  {[round(r[0], 1) for r in runs]}")


def parse(output: str, cpu_spent: float) -> tuple[float, float, float]:
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    if (failed := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) is not None:
        raise SystemExit(f"{failed.group(1)} failed requests:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", output)
    assert p50 is not None, output
    p50_ms = float(p50.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return rps, p50_ms, cpu_spent / max(requests, 1) * 1e6


def wrk(url: str, key: str, *, connections: int, duration: int) -> str:
    command = [*pinned(1), "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    command += ["-H", f"Authorization: Bearer {key}", url]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def request(url: str, headers: dict[str, str], body: object | None = None) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    # Loopback http only: the URLs are the servers this script started.
    sent = urllib.request.Request(url, data=data, headers={**headers, "Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(sent, timeout=30) as response:  # noqa: S310
        answer: dict[str, object] = json.loads(response.read())
        return answer


def manage(arguments: list[str], env: dict[str, str]) -> str:
    result = subprocess.run([PYTHON, "manage.py", *arguments], cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"manage.py {' '.join(arguments)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


@contextmanager
def running(command: list[str], env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{' '.join(command)} did not start") from None
                time.sleep(0.1)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) >= 2 else []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


if __name__ == "__main__":
    main()
