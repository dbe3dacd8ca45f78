"""`make bench`: Tributary against reference implementations, under the same load, in the same run.

On loopback it starts the upstream simulator (benchmarks/upstream.js on node, a fast non-Python one; without node,
benchmarks/upstream.py: the same bytes), every implementation with one worker (uvicorn; the floor is its own aiohttp
server), and a load generator (wrk when installed, else benchmarks/loadgen.py). With two or more cores, the
implementation under test gets core 0 (`taskset`) and the simulator and load generator share core 1, so the service's
CPU is one core and its cost is not mixed with the load's.

What issue 12's targets are judged on: payloads of 5 items (~0.4 KB) and 40 items (~2.3 KB) per upstream call (the
simulator switches size between runs: `--payloads`), at 64 connections (latency-bound: 64 / 50 ms = 1,280 req/s at
most) and 256 (every server saturated, so throughput shows CPU cost: `--connections`), with the same upstream pool
size for everyone (POOL = 1000 connections; Tributary's bulkhead too) except `tributary-defaults`.

Implementations (benchmarks/floor.py, bench_views.py, reference_fastapi.py, newcomer/); `*`: measured by default,
the others with `--only` (`--only all`: every one):

  * floor                 a bare aiohttp server + one shared aiohttp ClientSession, asyncio.gather, json decode, no
                          validation, json encode: the least a Python service can do for the same aggregation
  * fastapi               FastAPI, one shared httpx client on httpx-aiohttp, pydantic validation
  * tributary             GET /api/multiple-external-data/ with coalescing off (UPSTREAM_SLOW_COALESCE=false), pool
                          and bulkhead at POOL, metrics on (as shipped), anonymous and unlimited
  * tributary-defaults    `tributary` with UPSTREAM_SLOW_MAX_CONNECTIONS / MAX_CONCURRENCY unset (Tributary's defaults)
    tributary-coalesced   `tributary` with coalescing on (the default): identical concurrent upstream calls are shared
    seed                  the seed's pattern in Tributary's process: a new httpx.AsyncClient per call
    newcomer-adrf         startproject defaults + an adrf APIView with one shared default httpx client
  * tributary-2-workers   `tributary` under `python -m config.serve --workers 2` (a SO_REUSEPORT socket per worker), not
                          pinned
  * tributary-auth        `tributary` called with an API key, no rate limit (RATE_LIMIT=0): authentication alone
  * tributary-key         `tributary` called with an API key: authentication (cached key) + the per-worker rate limiter
                          + metrics: the whole product
    tributary-redis       `tributary` with REDIS_URL (a redis-server started here): circuit breakers and cache in Redis
    tributary-key-redis   `tributary-redis` called with an API key: authentication + the Redis rate limiter
  * tributary-bare        `tributary` with metrics off (METRICS_ENABLED=false) and tracing off: aggregation alone
    tributary-traced      `tributary-bare` with tracing on: every request sampled, spans exported over OTLP/HTTP to
                          a collector double (benchmarks/otlp_collector.py, on the load core)
    tributary-sampled     `tributary-traced` sampling 1 request in 10 (parentbased_traceidratio 0.1, as the README
                          suggests for production): the others still carry a traceparent, unsampled

`tributary` itself is anonymous and unlimited (API_KEYS_REQUIRED=false, RATE_LIMIT_ANONYMOUS=0). The keyed rows'
limit (RATE_LIMIT) is far above what a run sends, so every request is checked and admitted. The feature ladder
tributary-bare -> tributary (+ metrics) -> tributary-auth (+ authentication) -> tributary-key (+ limiter) puts each
feature's cost on its own row, and the whole product against FastAPI doing aggregation alone.

Why coalescing is off: Tributary coalesces identical concurrent upstream GETs, and a load generator repeating one
URL makes every call identical, so by default it skips most of the upstream work the others do (the "upstream
calls/request" column shows it). With it off every request makes its own three calls, the same work as the others.

Runs are short and interleaved: round r measures every implementation at every payload size and load level (in a
rotated order), so a busy moment of the machine is spread over the implementations instead of landing on one;
medians over rounds are reported. Then, for floor, tributary and fastapi at the highest load, 1 and 10 upstream calls
per request (`--curve-payloads`, default the smallest payload): server CPU per request (utime+stime of the server's
process tree from /proc), with the fixed cost per request (intercept) and the cost per call (slope) of the line
through 1, 3 and 10 calls. The report ends with issue 12's table (floor / FastAPI / Tributary), the defaults and
feature rows, and a TARGETS block. It reports; it does not judge: the exit status is 0 whether targets are met or
not (1 only if something could not be measured).

    .venv/bin/python benchmarks/run.py [--runs 3] [--duration 5] [--connections 64,256] [--payloads 5,40]
                                       [--curve-payloads 5] [--only floor,fastapi,tributary | all]
    .venv/bin/python benchmarks/run.py --quick    # one 2 s run per level: a smoke test of the harness
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PYTHON = sys.executable
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 5  # wrk --timeout: an answer slower than this is a timeout error
WARM_UP_S = 2.0
IDLE_WINDOW_S = 0.25  # idle: no upstream call served and (almost) no server CPU used for this long ...
IDLE_CPU_S = 0.02  # ... (at most this much CPU, summed over every server) ...
IDLE_TIMEOUT_S = 30.0  # ... waited for at most this long before each run
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Issue 12's targets (printed, not asserted), at the highest load level (saturated), every payload size.
TARGET_VS_FASTAPI = 1.5  # tributary req/s / fastapi's
TARGET_VS_FLOOR = 0.6  # tributary req/s / the floor's
TARGET_DEFAULTS = 0.95  # tributary-defaults req/s / tributary's (pool 1000), at every load level
TARGET_PEAK_RSS_MB = 100.0  # one worker, through the highest load level
TARGET_WHOLE_PRODUCT = 1.1  # tributary-key (authentication + per-worker limiter + metrics) req/s / fastapi's
TARGET_TWO_WORKER_SCALING = 1.8

Kind = Literal["tributary", "fastapi", "newcomer", "floor"]


# --- What is measured --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Implementation:
    name: str
    kind: Kind
    paths: dict[int, str]  # upstream calls per request -> path; 3 is the main comparison
    workers: int = 1
    cost_curve: bool = False  # measured at 1, 3 and 10 calls per request
    env: tuple[tuple[str, str], ...] = ()  # extra environment for the server
    api_key: bool = False  # requests carry `Authorization: Bearer <key>` (a key made in the server's database)
    redis: bool = False  # REDIS_URL points at a redis-server started for the run
    traced: bool = False  # OTEL_EXPORTER_OTLP_ENDPOINT points at a collector double started for the run

    @property
    def main_path(self) -> str:
        return self.paths[3]


TRIBUTARY_PATHS = {1: "/api/external-data/", 3: "/api/multiple-external-data/", 10: "/bench/ten-calls/"}
REFERENCE_PATHS = {1: "/one", 3: "/three", 10: "/ten"}  # fastapi and floor
# Equal pool sizes (issue 12): every implementation's upstream pool (and Tributary's bulkhead) allows this many calls
# in flight, so no row is capped by a limit the others do not have; `tributary-defaults` leaves Tributary's own.
POOL = 1000
DEFAULTS = (("UPSTREAM_SLOW_COALESCE", "false"),)
NO_COALESCING = (
    *DEFAULTS,
    ("UPSTREAM_SLOW_MAX_CONNECTIONS", str(POOL)),
    ("UPSTREAM_SLOW_MAX_CONCURRENCY", str(POOL)),
)
LIMITED = (*NO_COALESCING, ("RATE_LIMIT", "1000000"), ("RATE_LIMIT_PERIOD", "60"))  # never reached in a run
AUTHENTICATED = (*NO_COALESCING, ("RATE_LIMIT", "0"))  # a key is checked, no limiter runs
# Target from the issue: authentication + the per-worker limiter cost at most 10% of the plain aggregate's req/s.
TARGET_KEY_LIMIT_COST = 0.10
BARE = (*NO_COALESCING, ("METRICS_ENABLED", "false"))
# Targets from issue 11, against `tributary-bare` (both off): metrics cost at most 5% of req/s, tracing at most 15%.
OBSERVABILITY_COSTS = {
    "tributary": ("metrics", 0.05),
    "tributary-traced": ("tracing", 0.15),
    "tributary-sampled": ("tracing", 0.15),
}
SAMPLED = (*BARE, ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.1"))
IMPLEMENTATIONS = (
    Implementation(name="floor", kind="floor", paths=REFERENCE_PATHS, cost_curve=True),
    Implementation(name="fastapi", kind="fastapi", paths=REFERENCE_PATHS, cost_curve=True),
    Implementation(name="tributary", kind="tributary", paths=TRIBUTARY_PATHS, cost_curve=True, env=NO_COALESCING),
    Implementation(name="tributary-defaults", kind="tributary", paths={3: TRIBUTARY_PATHS[3]}, env=DEFAULTS),
    Implementation(name="tributary-coalesced", kind="tributary", paths={3: TRIBUTARY_PATHS[3]}, env=NO_COALESCING[1:]),
    Implementation(name="seed", kind="tributary", paths={3: "/bench/seed/multiple/"}),
    Implementation(name="newcomer-adrf", kind="newcomer", paths={1: "/one/", 3: "/three/", 10: "/ten/"}),
    Implementation(
        name="tributary-2-workers", kind="tributary", paths={3: TRIBUTARY_PATHS[3]}, workers=2, env=NO_COALESCING
    ),
    Implementation(
        name="tributary-auth", kind="tributary", paths={3: TRIBUTARY_PATHS[3]}, env=AUTHENTICATED, api_key=True
    ),
    Implementation(name="tributary-key", kind="tributary", paths={3: TRIBUTARY_PATHS[3]}, env=LIMITED, api_key=True),
    Implementation(name="tributary-redis", kind="tributary", paths={3: TRIBUTARY_PATHS[3]}, env=LIMITED, redis=True),
    Implementation(
        name="tributary-key-redis",
        kind="tributary",
        paths={3: TRIBUTARY_PATHS[3]},
        env=LIMITED,
        api_key=True,
        redis=True,
    ),
    Implementation(name="tributary-bare", kind="tributary", paths={3: TRIBUTARY_PATHS[3]}, env=BARE),
    Implementation(name="tributary-traced", kind="tributary", paths={3: TRIBUTARY_PATHS[3]}, env=BARE, traced=True),
    Implementation(name="tributary-sampled", kind="tributary", paths={3: TRIBUTARY_PATHS[3]}, env=SAMPLED, traced=True),
)
# Each keyed row and the row it is compared with (the same server without the key).
KEYED_BASELINES = {"tributary-key": "tributary", "tributary-key-redis": "tributary-redis"}
BY_NAME = {impl.name: impl for impl in IMPLEMENTATIONS}
BASELINE = "fastapi"
FLOOR = "floor"
# What `make bench` measures unless --only says otherwise: what issue 12's targets are judged on.
DEFAULT_SET = (
    "floor",
    "fastapi",
    "tributary",
    "tributary-defaults",
    "tributary-bare",
    "tributary-auth",
    "tributary-key",
    "tributary-2-workers",
)
# Issue 12's feature ladder: each row adds one feature to the row before it; the last is the whole product.
FEATURE_LADDER = (
    ("tributary-bare", "aggregation alone (metrics and tracing off)"),
    ("tributary", "+ metrics (as shipped)"),
    ("tributary-auth", "+ API key authentication"),
    ("tributary-key", "+ per-worker rate limiter: the whole product"),
)
WHOLE_PRODUCT = "tributary-key"


@dataclass(frozen=True)
class Sample:
    """One load run against one server."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    error_kinds: dict[str, int]  # e.g. {"non-2xx": 3, "timeout": 1}
    cpu_seconds: float  # the server's process tree, during the run
    upstream_calls: int  # payloads the simulator served during the run
    load_side_cpu: float  # CPU seconds of the simulator and the load generator during the run
    other_cpu: float  # CPU seconds (all cores) used by anything outside the benchmark's processes, steal included
    idle_wait: float  # seconds waited for every server to go idle before the run
    worker_cpu: tuple[float, ...]  # CPU seconds of each worker process (uvicorn --workers N > 1), busiest first
    idle: bool  # False: the run started while something was still busy (after IDLE_TIMEOUT_S)

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds * 1e6 / self.requests if self.requests else float("nan")

    @property
    def upstream_per_request(self) -> float:
        return self.upstream_calls / self.requests if self.requests else float("nan")

    def percent_of_core(self, cpu: float) -> float:
        return 100 * cpu / self.seconds if self.seconds else float("nan")

    def describe(self) -> str:
        load = f"  load side {self.percent_of_core(self.load_side_cpu):3.0f}%"
        load += f"  other {self.percent_of_core(self.other_cpu):3.0f}%"
        if self.worker_cpu:
            load += "  workers " + "/".join(f"{self.percent_of_core(cpu):.0f}%" for cpu in self.worker_cpu)
        if self.error_kinds:
            load += "  errors: " + ", ".join(f"{kind} {n}" for kind, n in self.error_kinds.items())
        waited = f"  (waited {self.idle_wait:.1f} s for idle)" if self.idle_wait > 1 else ""
        return (
            f"{self.rps:8.1f} req/s  p50 {self.p50_ms:7.1f} ms  p99 {self.p99_ms:7.1f} ms  errors {self.errors:<4}"
            f"  cpu {self.cpu_us_per_request:6.0f} us/req  up/req {self.upstream_per_request:5.2f}{load}{waited}"
            + ("" if self.idle else "  STARTED WHILE BUSY")
        )


@dataclass(frozen=True)
class Summary:
    """Medians over runs (errors: the total)."""

    runs: int
    rps: float
    rps_spread: float  # (max - min) / median of req/s, over runs
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_percent: float  # server CPU seconds per wall second, in % of one core
    cpu_us_per_request: float
    upstream_per_request: float
    load_side_percent: float  # CPU of the simulator + load generator, % of one core, the busiest run's
    other_percent: float  # CPU used outside the benchmark, % of one core, the busiest run's

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> Summary:
        rates = [s.rps for s in samples]
        median_rps = statistics.median(rates)
        return cls(
            runs=len(samples),
            rps=median_rps,
            rps_spread=(max(rates) - min(rates)) / median_rps if median_rps else float("nan"),
            p50_ms=statistics.median(s.p50_ms for s in samples),
            p99_ms=statistics.median(s.p99_ms for s in samples),
            errors=sum(s.errors for s in samples),
            cpu_percent=statistics.median(100 * s.cpu_seconds / s.seconds for s in samples),
            cpu_us_per_request=statistics.median(s.cpu_us_per_request for s in samples),
            upstream_per_request=statistics.median(s.upstream_per_request for s in samples),
            load_side_percent=max(s.percent_of_core(s.load_side_cpu) for s in samples),
            other_percent=max(s.percent_of_core(s.other_cpu) for s in samples),
        )


@dataclass
class Results:
    # (impl, calls, connections, items per payload)
    samples: dict[tuple[str, int, int, int], list[Sample]] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)  # through every payload's runs
    peak_rss_by_items: dict[tuple[str, int], float] = field(default_factory=dict)  # (impl, items) -> MB
    failed: dict[str, str] = field(default_factory=dict)  # impl -> why it could not be measured
    newcomer_db_opened: bool | None = None

    def add(self, impl: str, calls: int, connections: int, items: int, sample: Sample) -> None:
        self.samples.setdefault((impl, calls, connections, items), []).append(sample)

    def summary(self, impl: str, calls: int, connections: int, items: int) -> Summary | None:
        samples = self.samples.get((impl, calls, connections, items))
        return Summary.of(samples) if samples else None


# --- The machine ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Which cores the server and the load side get; None: no pinning."""

    server_core: int | None
    load_core: int | None
    all_cores: str
    reason: str

    @classmethod
    def detect(cls) -> Placement:
        allowed = sorted(os.sched_getaffinity(0))
        all_cores = ",".join(map(str, allowed))
        if shutil.which("taskset") is None:
            return cls(None, None, all_cores, "no pinning: taskset is not installed")
        if len(allowed) < 2:
            return cls(None, None, all_cores, f"no pinning: only {len(allowed)} core available")
        return cls(
            allowed[0],
            allowed[1],
            all_cores,
            f"server pinned to core {allowed[0]}; simulator and load generator share core {allowed[1]}",
        )

    @property
    def pinned(self) -> bool:
        return self.server_core is not None

    def server_prefix(self, impl: Implementation) -> list[str]:
        if not self.pinned:
            return []
        # Several workers get every core (explicitly: a pinned parent's affinity would otherwise be inherited).
        return ["taskset", "-c", self.all_cores if impl.workers > 1 else str(self.server_core)]

    def load_prefix(self) -> list[str]:
        return ["taskset", "-c", str(self.load_core)] if self.pinned else []


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def fast_uvicorn_flags() -> list[str]:
    """uvloop + httptools when both are importable (uvicorn[standard]); the same for every implementation."""
    if all(importlib.util.find_spec(name) is not None for name in ("uvloop", "httptools")):
        return ["--loop", "uvloop", "--http", "httptools"]
    return []


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


# --- /proc ---------------------------------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and its live descendants (uvicorn --workers N runs workers as children)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def tree_cpu(root: int) -> dict[int, float]:
    """utime + stime of each live process of the tree, in seconds."""
    seconds = {}
    for pid in process_tree(root):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            seconds[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14, 15 of stat(5)
    return seconds


def cpu_seconds(root: int) -> float:
    """utime + stime of the process tree (live processes)."""
    return sum(tree_cpu(root).values())


def peak_rss_mb(root: int) -> float:
    """Sum of VmHWM (peak resident set) over the process tree, in MB."""
    kilobytes = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    kilobytes += int(line.split()[1])
    return kilobytes / 1024


def reset_peak_rss(root: int) -> bool:
    """Reset VmHWM to the current RSS over the process tree (Linux: `5` to /proc/<pid>/clear_refs); False if it could
    not be (the peaks read later then cover everything since the process started)."""
    done = True
    for pid in process_tree(root):
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            done = False
    return done


def machine_busy_seconds() -> float:
    """CPU seconds every core has spent busy since boot (user, nice, system, irq, softirq, steal), from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in line.split()[1:9])
            return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS
    return 0.0


def own_and_children_cpu() -> float:
    """CPU seconds of this runner and of its finished children (the load generator runs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def worker_split(root: int, before: dict[int, float], after: dict[int, float]) -> tuple[float, ...]:
    """CPU seconds each worker (a process of the tree other than the supervisor) used between two readings."""
    used = [cpu - before.get(pid, 0.0) for pid, cpu in after.items() if pid != root]
    return tuple(sorted((cpu for cpu in used if cpu > 0.005), reverse=True))


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(group) == pgid and state != "Z":
                members.append(int(stat.parent.name))
    return members


# --- Processes -----------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http_get(url: str, *, timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback http only
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback http only
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _rate_limited(url: str, headers: dict[str, str]) -> bool:
    """The request was authenticated and counted: its response carries the limiter's RateLimit field."""
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback http only
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback http only
        return str(response.headers.get("RateLimit", "")).startswith('"default";')


class Process:
    """A child process in its own session, so stopping it reaches its own children (uvicorn workers) too."""

    def __init__(self, name: str, command: list[str], *, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.command = command
        self.log_path = log_dir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_ready(self, url: str, headers: dict[str, str] | None = None) -> bytes:
        """The body of the first 200 from `url`, within READY_TIMEOUT_S."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.popen.returncode}\n{self.log_tail()}")
            try:
                status, body = http_get(url, timeout=2.0, headers=headers)
            except OSError as exc:
                last = str(exc)
            else:
                if status == 200:
                    return body
                last = f"HTTP {status}: {body[:200]!r}"
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready within {READY_TIMEOUT_S:g} s ({last})\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """SIGTERM to the process group (the server and its workers); SIGKILL what is left after STOP_TIMEOUT_S."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.alive():
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)

    def alive(self) -> bool:
        self.popen.poll()  # reap the leader, so it does not count as a member
        return bool(group_members(self.popen.pid))


@dataclass
class Servers:
    """Everything started, for the `finally` that stops it all."""

    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, command: list[str], *, env: dict[str, str], log_dir: Path) -> Process:
        process = Process(name, command, env=env, log_dir=log_dir)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def leftovers(self) -> list[str]:
        """Started processes with anything of their process group still alive."""
        return [f"{p.name} (group {p.pid})" for p in self.processes if p.alive()]


def base_env() -> dict[str, str]:
    """The runner's environment minus anything that would configure a server behind our back."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("UPSTREAM_", "DJANGO_", "AGGREGATE_", "DEMO_")) and key not in {"REDIS_URL"}
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def server_env(kind: Kind, upstream_url: str, work_dir: Path) -> dict[str, str]:
    env = base_env()
    if kind == "tributary":
        env |= {
            "DJANGO_SETTINGS_MODULE": "benchmarks.bench_settings",
            "DJANGO_SECRET_KEY": "bench",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            # The plain aggregate: anonymous calls, not rate limited (the keyed rows set their own limits).
            "API_KEYS_REQUIRED": "false",
            "RATE_LIMIT_ANONYMOUS": "0",
            **{f"UPSTREAM_{name}_URL": upstream_url for name in ("SLOW", "CATALOG", "INVENTORY", "REVIEWS", "FX")},
        }
    elif kind == "newcomer":
        env |= {
            "DJANGO_SETTINGS_MODULE": "benchmarks.newcomer.settings",
            "UPSTREAM_URL": upstream_url,
            "NEWCOMER_SQLITE_PATH": str(work_dir / "newcomer.sqlite3"),
        }
    else:
        env |= {
            "UPSTREAM_URL": upstream_url,
            "REFERENCE_MAX_CONNECTIONS": str(POOL),
            "FLOOR_MAX_CONNECTIONS": str(POOL),
        }
    return env


APPS: dict[Kind, str] = {
    "tributary": "config.asgi:application",
    "fastapi": "benchmarks.reference_fastapi:app",
    "newcomer": "benchmarks.newcomer.asgi:application",
    "floor": "benchmarks/floor.py",  # its own aiohttp server, not under uvicorn
}


def server_command(impl: Implementation, port: int, placement: Placement) -> list[str]:
    # Django's own ASGI handler refuses the lifespan protocol: the newcomer runs with uvicorn's default ("auto").
    lifespan = "auto" if impl.kind == "newcomer" else "on"
    if impl.kind == "floor":
        return [*placement.server_prefix(impl), PYTHON, str(ROOT / APPS["floor"]), "--host", HOST, "--port", str(port)]
    if impl.kind == "tributary" and impl.workers > 1:
        # Tributary's own launcher: one SO_REUSEPORT socket per worker, so connections spread evenly.
        return [
            *placement.server_prefix(impl),
            *(PYTHON, "-m", "config.serve", "--host", HOST, "--port", str(port), "--workers", str(impl.workers)),
            *("--no-access-log", "--log-level", "warning"),
        ]
    return [
        *placement.server_prefix(impl),
        PYTHON,
        "-m",
        "uvicorn",
        APPS[impl.kind],
        *("--host", HOST, "--port", str(port), "--workers", str(impl.workers), "--lifespan", lifespan),
        *("--no-access-log", "--log-level", "warning", *fast_uvicorn_flags()),
    ]


def check_body(body: bytes, calls: int) -> int:
    """The number of payloads in a response body, or ValueError if it is not the expected shape."""
    data = json.loads(body)
    payloads = [data] if calls == 1 else data.get("results", [])
    if len(payloads) != calls or not all(isinstance(p, dict) and len(p.get("items", [])) > 0 for p in payloads):
        raise ValueError(f"expected {calls} payload(s), got {body[:200]!r}")
    return len(body)


# --- Load ----------------------------------------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS_MS[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/sec, the 50% and 99% latency lines, and errors (non-2xx/3xx plus socket errors) of `wrk --latency`."""
    completed = re.search(r"(\d+) requests in ([\d.]+(?:us|ms|s|m)),", output)
    if completed is None:
        raise ValueError(f"unexpected wrk output: {output[-300:]!r}")
    kinds: dict[str, int] = {}
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        kinds |= dict(zip(("connect", "read", "write", "timeout"), map(int, match.groups()), strict=True))
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        kinds["non-2xx"] = int(match.group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return {
        "requests": int(completed.group(1)),
        "seconds": _ms(completed.group(2)) / 1000,
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": _ms(p50.group(1)) if p50 else float("nan"),
        "p99_ms": _ms(p99.group(1)) if p99 else float("nan"),
        "errors": sum(kinds.values()),
        "error_kinds": {kind: n for kind, n in kinds.items() if n},
    }


@dataclass(frozen=True)
class LoadGenerator:
    placement: Placement
    wrk: str | None

    @property
    def label(self) -> str:
        return "wrk" if self.wrk else "benchmarks/loadgen.py (Python fallback: wrk is not installed)"

    def command(self, url: str, connections: int, duration: float, headers: dict[str, str] | None = None) -> list[str]:
        header_args = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
        if self.wrk:
            # One thread: the load core is shared with the simulator; wrk's thread is far from its limit here.
            args = ["-t1", f"-c{connections}", f"-d{duration:g}s", f"--timeout={REQUEST_TIMEOUT_S}s", "--latency", url]
            return [*self.placement.load_prefix(), self.wrk, *header_args, *args]
        args = [url, "-c", str(connections), "-d", f"{duration:g}", "--timeout", str(REQUEST_TIMEOUT_S), *header_args]
        return [*self.placement.load_prefix(), PYTHON, str(ROOT / "benchmarks" / "loadgen.py"), *args]

    def run(self, url: str, connections: int, duration: float, headers: dict[str, str] | None = None) -> dict[str, Any]:
        done = subprocess.run(
            self.command(url, connections, duration, headers),
            capture_output=True,
            text=True,
            timeout=duration + REQUEST_TIMEOUT_S + 30,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return parse_wrk(done.stdout) if self.wrk else json.loads(done.stdout)


# --- The benchmark -------------------------------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    placement: Placement
    load: LoadGenerator
    work_dir: Path
    servers: Servers = field(default_factory=Servers)
    results: Results = field(default_factory=Results)
    running: dict[str, tuple[Process, str]] = field(default_factory=dict)  # impl -> (process, base URL)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # impl -> request headers (its API key)
    redis_url: str = ""
    simulator: Process | None = None
    simulator_url: str = ""
    collector_url: str = ""
    spans_received: int = 0
    items: int = 0  # items per payload the simulator serves now
    payload_bytes: dict[int, int] = field(default_factory=dict)  # items -> bytes of one payload

    def start_collector(self) -> None:
        port = free_port()
        command = [*self.placement.load_prefix(), PYTHON, str(ROOT / "benchmarks" / "otlp_collector.py")]
        process = self.servers.start(
            "otlp-collector", [*command, "--port", str(port)], env=base_env(), log_dir=self.work_dir
        )
        self.collector_url = f"http://{HOST}:{port}"
        process.wait_ready(f"{self.collector_url}/count")
        print(f"  {'otlp-collector':<20} pid {process.pid:<7} {self.collector_url}/v1/traces")

    def spans_collected(self) -> int:
        return int(http_get(f"{self.collector_url}/count")[1]) if self.collector_url else 0

    def set_items(self, items: int) -> None:
        """Every later payload of the simulator has `items` items (the servers under test are not restarted)."""
        if self.items == items:
            return
        status, body = http_get(f"{self.simulator_url}/__items?n={items}")
        if status != 200:
            raise RuntimeError(f"the simulator refused {items} items: {body[:200]!r}")
        self.items = items
        self.payload_bytes[items] = int(json.loads(body)["bytes"])

    def simulator_served(self) -> int:
        _, body = http_get(f"{self.simulator_url}/__stats")
        return int(json.loads(body)["requests"])

    def start_simulator(self) -> None:
        port = free_port()
        node = None if self.args.python_upstream else shutil.which("node")
        program = (
            [node, str(ROOT / "benchmarks" / "upstream.js")]
            if node
            else [PYTHON, str(ROOT / "benchmarks" / "upstream.py")]
        )
        command = [
            *self.placement.load_prefix(),
            *program,
            *("--port", str(port), "--latency-ms", f"{self.args.latency_ms:g}", "--items", str(self.args.payloads[-1])),
        ]
        self.simulator = self.servers.start("upstream", command, env=base_env(), log_dir=self.work_dir)
        self.simulator_url = f"http://{HOST}:{port}"
        self.simulator.wait_ready(f"{self.simulator_url}/__stats")

    def start_redis(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        port = free_port()
        command = [exe, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        process = self.servers.start(
            "redis", [*self.placement.load_prefix(), *command], env=base_env(), log_dir=self.work_dir
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.popen.poll() is not None:
                    raise RuntimeError(f"redis-server did not start\n{process.log_tail()}") from None
                time.sleep(0.05)
        self.redis_url = f"redis://{HOST}:{port}/0"
        print(f"  {'redis-server':<20} pid {process.pid:<7} {self.redis_url}")

    def api_key(self, impl: Implementation, env: dict[str, str]) -> str:
        """A database of the implementation's own, migrated, and a new API key in it."""
        manage = [PYTHON, str(ROOT / "manage.py")]
        migrated = subprocess.run(
            [*manage, "migrate", "--noinput"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        made = subprocess.run(
            [*manage, "create_api_key", "bench"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        if migrated.returncode or made.returncode or not made.stdout.strip():
            raise RuntimeError(f"no API key for {impl.name}: {(migrated.stderr + made.stderr).strip()[-500:]}")
        return made.stdout.strip().splitlines()[-1]

    def start(self, impl: Implementation) -> None:
        port = free_port()
        env = server_env(impl.kind, self.simulator_url, self.work_dir) | dict(impl.env)
        if impl.redis:
            if not self.redis_url:
                self.start_redis()
            env["REDIS_URL"] = self.redis_url
        if impl.traced:
            if not self.collector_url:
                self.start_collector()
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.collector_url
        headers = {}
        if impl.api_key:
            env["SQLITE_PATH"] = str(self.work_dir / f"{impl.name}.sqlite3")
            headers["Authorization"] = f"Bearer {self.api_key(impl, env)}"
        self.headers[impl.name] = headers
        process = self.servers.start(
            impl.name,
            server_command(impl, port, self.placement),
            env=env,
            log_dir=self.work_dir,
        )
        base = f"http://{HOST}:{port}"
        sizes = []
        for calls, path in sorted(impl.paths.items()):
            body = process.wait_ready(base + path, headers)
            limited = impl.api_key and dict(impl.env).get("RATE_LIMIT") != "0"
            if limited and not _rate_limited(base + path, headers):
                raise RuntimeError(f"{impl.name}: the keyed request carries no RateLimit field (no limiter ran)")
            sizes.append(f"{calls} call{'s' * (calls > 1)}: {check_body(body, calls)} B")
        self.running[impl.name] = (process, base)
        print(f"  {impl.name:<20} pid {process.pid:<7} {base}{impl.main_path}  ({', '.join(sizes)})")

    def busy_counters(self) -> tuple[float, int]:
        """(CPU seconds of every running server, payloads served by the simulator)."""
        return sum(cpu_seconds(process.pid) for process, _ in self.running.values()), self.simulator_served()

    def wait_idle(self) -> tuple[float, bool]:
        """Wait until no server is still working on an earlier run: (seconds waited, idle reached)."""
        started = time.monotonic()
        before = self.busy_counters()
        while time.monotonic() - started < IDLE_TIMEOUT_S:
            time.sleep(IDLE_WINDOW_S)
            now = self.busy_counters()
            if now[1] == before[1] and now[0] - before[0] <= IDLE_CPU_S:
                return time.monotonic() - started, True
            before = now
        return time.monotonic() - started, False

    def measure(self, impl: Implementation, calls: int, connections: int, duration: float) -> Sample:
        process, base = self.running[impl.name]
        assert self.simulator is not None
        if process.popen.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.popen.returncode}\n{process.log_tail()}")
        idle_wait, idle = self.wait_idle()
        servers_before, served_before = self.busy_counters()
        server_before, simulator_before = tree_cpu(process.pid), cpu_seconds(self.simulator.pid)
        runner_before, machine_before = own_and_children_cpu(), machine_busy_seconds()
        result = self.load.run(base + impl.paths[calls], connections, duration, self.headers.get(impl.name))
        machine_after, runner_after = machine_busy_seconds(), own_and_children_cpu()
        server_after, simulator_after = tree_cpu(process.pid), cpu_seconds(self.simulator.pid)
        servers_after, served_after = self.busy_counters()
        load_side = (simulator_after - simulator_before) + (runner_after - runner_before)
        ours = (servers_after - servers_before) + load_side
        answered = result["requests"] > 0
        return Sample(
            requests=result["requests"],
            seconds=result["seconds"],
            rps=result["rps"],
            p50_ms=result["p50_ms"] if answered else float("nan"),
            p99_ms=result["p99_ms"] if answered else float("nan"),
            errors=result["errors"],
            error_kinds=result.get("error_kinds", {}),
            cpu_seconds=sum(server_after.values()) - sum(server_before.values()),
            upstream_calls=served_after - served_before,
            load_side_cpu=load_side,
            other_cpu=max(0.0, machine_after - machine_before - ours),
            idle_wait=idle_wait,
            idle=idle,
            worker_cpu=worker_split(process.pid, server_before, server_after) if impl.workers > 1 else (),
        )

    def record(self, impl: Implementation, calls: int, connections: int, items: int, label: str) -> None:
        where = f"{label} {impl.name:<20} items={items:<2} calls={calls:<2} c={connections:<3}"
        try:
            self.set_items(items)
            sample = self.measure(impl, calls, connections, self.args.duration)
        except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
            print(f"  {where} FAILED: {exc}")
            self.results.failed.setdefault(impl.name, f"a run failed: {exc}")
            return
        self.results.add(impl.name, calls, connections, items, sample)
        print(f"  {where} {sample.describe()}")

    def run(self, impls: Sequence[Implementation]) -> None:
        args = self.args
        print("Starting servers (each checked: 200 and the expected payloads on every measured path)")
        self.start_simulator()
        assert self.simulator is not None
        print(f"  {'upstream simulator':<20} pid {self.simulator.pid:<7} {self.simulator_url}/slow_data_1")
        started: list[Implementation] = []
        for impl in impls:
            try:
                self.start(impl)
            except (RuntimeError, ValueError) as exc:
                print(f"  {impl.name:<20} FAILED TO START: {exc}")
                self.results.failed[impl.name] = f"did not start: {str(exc).splitlines()[0]}"
            else:
                started.append(impl)
        print(f"\nWarm-up: {WARM_UP_S:g} s at {max(args.connections)} connections each (not measured)")
        for impl in started:
            _, base = self.running[impl.name]
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.load.run(
                    base + impl.main_path, max(args.connections), min(WARM_UP_S, args.duration), self.headers[impl.name]
                )

        print(
            f"\nMeasuring: {args.runs} round(s) of {args.duration:g} s runs, 3 upstream calls per request,"
            f" payloads of {' and '.join(map(str, args.payloads))} items"
        )
        for round_number in range(args.runs):
            shift = round_number % max(1, len(started))
            for items in args.payloads:
                # Peaks per payload size: VmHWM is reset before each payload's runs and read after them.
                reset = {impl.name: reset_peak_rss(self.running[impl.name][0].pid) for impl in started}
                for impl in [*started[shift:], *started[:shift]]:
                    for connections in args.connections:
                        self.record(impl, 3, connections, items, f"[{round_number + 1}/{args.runs}]")
                for impl in started:
                    if reset[impl.name]:
                        peak = peak_rss_mb(self.running[impl.name][0].pid)
                        key = (impl.name, items)
                        self.results.peak_rss_by_items[key] = max(peak, self.results.peak_rss_by_items.get(key, 0.0))
        for impl in started:
            by_items = [peak for (name, _), peak in self.results.peak_rss_by_items.items() if name == impl.name]
            since_start = peak_rss_mb(self.running[impl.name][0].pid)
            self.results.peak_rss_mb[impl.name] = max(by_items) if by_items else since_start

        curve = [impl for impl in started if impl.cost_curve]
        if curve:
            top = max(args.connections)
            sizes = " and ".join(map(str, args.curve_payloads))
            print(
                f"\nMeasuring: cost per upstream call, 1 and 10 calls per request at {top} connections, {sizes} items"
            )
            for round_number in range(args.runs):
                for items in args.curve_payloads:
                    for impl in curve:
                        for calls in (1, 10):
                            self.record(impl, calls, top, items, f"[{round_number + 1}/{args.runs}]")

        self.spans_received = self.spans_collected()  # before the servers stop (the collector with them)
        if "newcomer-adrf" in self.running:
            self.results.newcomer_db_opened = (self.work_dir / "newcomer.sqlite3").exists()


# --- The report ----------------------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    """`value` formatted, or "-" when it is missing or NaN."""
    if value is None or value != value:
        return "-"
    return format(value, spec)


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0 or value != value or base != base:
        return None
    return value / base


# (title, second title line, width) of each column of the per-level table.
LEVEL_COLUMNS = (
    ("implementation", "", 20),
    ("req/s", "", 8),
    ("spread", "", 7),
    ("p50 ms", "", 8),
    ("p99 ms", "", 8),
    ("errors", "", 7),
    ("srv CPU", "% core", 8),
    ("up/req", "", 7),
    ("peak RSS", "MB", 9),
    ("other", "% core", 7),
    ("req/s", "xfastapi", 9),
    ("p50", "xfastapi", 9),
)


def _row(cells: Sequence[str]) -> str:
    return "  " + " ".join(
        f"{cell:<{width}}" if i == 0 else f"{cell:>{width}}"
        for i, (cell, (_, _, width)) in enumerate(zip(cells, LEVEL_COLUMNS, strict=True))
    )


def print_level_table(results: Results, impls: Sequence[Implementation], connections: int, items: int) -> None:
    baseline = results.summary(BASELINE, 3, connections, items)
    print(
        f"\n{connections} connections, {items} items per payload, 3 upstream calls per request"
        " (medians over runs; errors: total)"
    )
    header = _row([title for title, _, _ in LEVEL_COLUMNS])
    print(header)
    print(_row([subtitle for _, subtitle, _ in LEVEL_COLUMNS]))
    print("  " + "-" * (len(header) - 2))
    for impl in impls:
        summary = results.summary(impl.name, 3, connections, items)
        if summary is None:
            print(f"  {impl.name:<20} not measured: {results.failed.get(impl.name, 'no successful run')}")
            continue
        rps_ratio = _ratio(summary.rps, baseline.rps if baseline else None)
        p50_ratio = _ratio(summary.p50_ms, baseline.p50_ms if baseline else None)
        cells = [
            impl.name,
            f"{summary.rps:.1f}",
            _fmt(100 * summary.rps_spread, ".0f") + "%",
            _fmt(summary.p50_ms, ".1f"),
            _fmt(summary.p99_ms, ".1f"),
            str(summary.errors),
            f"{summary.cpu_percent:.0f}%",
            _fmt(summary.upstream_per_request, ".2f"),
            _fmt(results.peak_rss_mb.get(impl.name), ".1f"),
            f"{summary.other_percent:.0f}%",
            _fmt(rps_ratio, ".2f") + "x",
            _fmt(p50_ratio, ".2f") + "x",
        ]
        print(_row(cells))


@dataclass(frozen=True)
class CostCurve:
    """Server CPU per request at 1, 3 and 10 upstream calls: a least-squares line through the points measured."""

    points: dict[int, Summary]

    def _fit(self) -> tuple[float, float] | None:
        if len(self.points) < 2 or 1 not in self.points or 10 not in self.points:
            return None
        xs = list(self.points)
        ys = [self.points[x].cpu_us_per_request for x in xs]
        mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mean_x) ** 2 for x in xs
        )
        return slope, mean_y - slope * mean_x

    @property
    def per_call_us(self) -> float | None:
        fit = self._fit()
        return None if fit is None else fit[0]

    @property
    def fixed_us(self) -> float | None:
        fit = self._fit()
        return None if fit is None else fit[1]


def cost_curve(results: Results, impl: str, connections: int, items: int) -> CostCurve:
    points = {calls: results.summary(impl, calls, connections, items) for calls in (1, 3, 10)}
    return CostCurve({calls: summary for calls, summary in points.items() if summary is not None})


def print_cost_table(results: Results, impls: Sequence[Implementation], connections: int, items: int) -> None:
    curves = [impl for impl in impls if impl.cost_curve]
    if not curves or not any(results.summary(impl.name, 10, connections, items) for impl in curves):
        return
    print(
        f"\nCost grows with work: {connections} connections, {items} items per payload,"
        " 1, 3 and 10 upstream calls per request"
    )
    print("  (server CPU = utime+stime of the server's process tree from /proc/<pid>/stat, per request served;")
    print("   fixed per request = intercept, per call = slope of the least-squares line through the 1/3/10 points)")
    print(f"  {'implementation':<20} {'calls':>5} {'req/s':>8} {'p50 ms':>8} {'errors':>7} {'CPU us/req':>11}")
    print("  " + "-" * 63)
    for impl in curves:
        curve = cost_curve(results, impl.name, connections, items)
        for calls, summary in sorted(curve.points.items()):
            print(
                f"  {impl.name:<20} {calls:>5} {summary.rps:>8.1f} {summary.p50_ms:>8.1f} {summary.errors:>7}"
                f" {summary.cpu_us_per_request:>11.0f}"
            )
        print(
            f"  {'':<20} -> fixed per request {_fmt(curve.fixed_us, '.0f')} us CPU,"
            f" per upstream call {_fmt(curve.per_call_us, '.0f')} us"
        )


def _rps(summary: Summary | None) -> float | None:
    return summary.rps if summary else None


def _cpu_us(summary: Summary | None) -> float | None:
    return summary.cpu_us_per_request if summary else None


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("MET" if met else "NOT MET")


def _payload_label(bench: Bench, items: int) -> str:
    size = bench.payload_bytes.get(items)
    return f"{items} items" + (f" (~{size / 1000:.1f} KB)" if size else "")


def print_issue12_table(results: Results, bench: Bench, args: argparse.Namespace) -> None:
    """Issue 12's table: floor, FastAPI and Tributary side by side, per payload size and load level."""
    names = (FLOOR, BASELINE, "tributary")
    if not any(key[0] in names for key in results.samples):
        return
    print(
        f"\nFLOOR / FASTAPI / TRIBUTARY (issue 12): 3 upstream calls per request, pool {POOL} for everyone;"
        " req/s and server CPU us per request, medians of interleaved rounds"
    )
    print(
        "  (T/x: tributary's req/s over x's; 'by CPU': x's CPU us per request over tributary's, i.e. the ratio of"
        " req/s per core, steadier than req/s when other work shares the server's core)"
    )
    print(
        f"  {'payload per call':<22} {'conns':>5} | {'floor':>15} | {'fastapi':>15} | {'tributary':>15} |"
        f" {'T/fastapi':>9} {'by CPU':>6} | {'T/floor':>7} {'by CPU':>6}"
    )
    print("  " + "-" * 122)
    for items in args.payloads:
        for connections in args.connections:
            floor, fastapi, tributary = (results.summary(name, 3, connections, items) for name in names)
            cells = [f"{_fmt(_rps(s), '.0f'):>6}, {_fmt(_cpu_us(s), '.0f'):>5} us" for s in (floor, fastapi, tributary)]
            print(
                f"  {_payload_label(bench, items):<22} {connections:>5} | {cells[0]:>15} | {cells[1]:>15} |"
                f" {cells[2]:>15} | {_fmt(_ratio(_rps(tributary), _rps(fastapi)), '.2f'):>8}x"
                f" {_fmt(_ratio(_cpu_us(fastapi), _cpu_us(tributary)), '.2f'):>5}x |"
                f" {_fmt(_ratio(_rps(tributary), _rps(floor)), '.2f'):>6}x"
                f" {_fmt(_ratio(_cpu_us(floor), _cpu_us(tributary)), '.2f'):>5}x"
            )
    top = max(args.connections)
    for items in args.payloads:
        busy = ", ".join(
            f"{name} {_fmt(summary.cpu_percent if summary else None, '.0f')}%"
            for name in names
            for summary in [results.summary(name, 3, top, items)]
        )
        print(
            f"  server CPU at {top} connections, {items} items (% of one core; below ~100%: the row was not CPU-bound"
            f" or other work shared its core): {busy}"
        )
    rss = ", ".join(
        f"{impl} {_fmt(results.peak_rss_mb.get(impl), '.1f')} MB"
        for impl in (*names, "tributary-defaults", WHOLE_PRODUCT)
        if impl in results.peak_rss_mb
    )
    print(f"  peak RSS of one worker (VmHWM, through {top} connections, every payload): {rss}")
    for items in args.payloads:
        each = ", ".join(
            f"{impl} {_fmt(results.peak_rss_by_items[(impl, items)], '.1f')} MB"
            for impl in (*names, "tributary-defaults", WHOLE_PRODUCT)
            if (impl, items) in results.peak_rss_by_items
        )
        if each:
            print(f"  peak RSS of one worker during the {items}-item runs (VmHWM reset before them): {each}")
    print(
        f"  ceiling: {top} connections / {args.latency_ms:g} ms allow at most {top * 1000 / args.latency_ms:.0f} req/s;"
        " rows near it are latency-bound (their CPU per request includes idle-loop overhead)"
    )


def print_defaults(results: Results, args: argparse.Namespace) -> None:
    """Tributary with its default pool and bulkhead against the same server with pool 1000 (issue 12)."""
    if not any(key[0] == "tributary-defaults" for key in results.samples):
        return
    print(
        "\nDEFAULTS THAT DO NOT CAP: tributary-defaults (UPSTREAM_SLOW_MAX_CONNECTIONS / MAX_CONCURRENCY unset)"
        f" against tributary (both {POOL})"
    )
    print(
        f"  {'items':>5} {'conns':>5} {'defaults req/s':>14} {'p50 ms':>7} {'errors':>6} {'tuned req/s':>11}"
        f" {'p50 ms':>7} {'ratio':>6}"
    )
    for items in args.payloads:
        for connections in args.connections:
            mine = results.summary("tributary-defaults", 3, connections, items)
            tuned = results.summary("tributary", 3, connections, items)
            p50, p50_tuned = (summary.p50_ms if summary else None for summary in (mine, tuned))
            print(
                f"  {items:>5} {connections:>5} {_fmt(_rps(mine), '.1f'):>14} {_fmt(p50, '.1f'):>7}"
                f" {mine.errors if mine else '-':>6} {_fmt(_rps(tuned), '.1f'):>11}"
                f" {_fmt(p50_tuned, '.1f'):>7} {_fmt(_ratio(_rps(mine), _rps(tuned)), '.3f'):>6}"
            )


def print_features(results: Results, args: argparse.Namespace) -> None:
    """Issue 12's feature ladder: each row adds one feature; its cost against the row above and FastAPI."""
    measured = [(name, what) for name, what in FEATURE_LADDER if any(key[0] == name for key in results.samples)]
    if not measured:
        return
    print("\nCOST PER FEATURE (3 upstream calls per request; each row adds one feature to the row above it)")
    print(
        f"  {'row':<16} {'adds':<46} {'items':>5} {'conns':>5} {'req/s':>8} {'vs above':>8} {'CPU us/req':>10}"
        f" {'+us':>5} {'x fastapi':>9}"
    )
    for items in args.payloads:
        for connections in args.connections:
            fastapi = results.summary(BASELINE, 3, connections, items)
            above: Summary | None = None
            for name, what in measured:
                mine = results.summary(name, 3, connections, items)
                extra = None if above is None or mine is None else mine.cpu_us_per_request - above.cpu_us_per_request
                print(
                    f"  {name:<16} {what:<46} {items:>5} {connections:>5} {_fmt(_rps(mine), '.1f'):>8}"
                    f" {_fmt(_ratio(_rps(mine), _rps(above)), '.3f'):>8} {_fmt(_cpu_us(mine), '.0f'):>10}"
                    f" {_fmt(extra, '+.0f'):>5} {_fmt(_ratio(_rps(mine), _rps(fastapi)), '.2f'):>8}x"
                )
                above = mine


def print_targets(results: Results, args: argparse.Namespace) -> None:
    top = max(args.connections)
    rows: list[tuple[str, str, bool | None]] = []

    def ratio_row(name: str, value: float | None, target: float, by_cpu: float | None = None) -> None:
        met = None if value is None else value >= target
        cpu = f" (by CPU {_fmt(by_cpu, '.2f')}x)" if by_cpu is not None else ""
        rows.append((name, f"{_fmt(value, '.2f')}x{cpu}", met))

    def rps(impl: str, connections: int, items: int) -> float | None:
        return _rps(results.summary(impl, 3, connections, items))

    def by_cpu(mine: str, theirs: str, connections: int, items: int) -> float | None:
        """Their CPU per request over mine: the req/s ratio if both had a core to themselves."""
        return _ratio(
            _cpu_us(results.summary(theirs, 3, connections, items)),
            _cpu_us(results.summary(mine, 3, connections, items)),
        )

    for items in args.payloads:
        ratio_row(
            f"tributary req/s >= {TARGET_VS_FASTAPI:g}x fastapi ({items} items, {top} conns)",
            _ratio(rps("tributary", top, items), rps(BASELINE, top, items)),
            TARGET_VS_FASTAPI,
            by_cpu("tributary", BASELINE, top, items),
        )
    for items in args.payloads:
        ratio_row(
            f"tributary req/s >= {TARGET_VS_FLOOR:g}x floor ({items} items, {top} conns)",
            _ratio(rps("tributary", top, items), rps(FLOOR, top, items)),
            TARGET_VS_FLOOR,
            by_cpu("tributary", FLOOR, top, items),
        )
    for items in args.curve_payloads:
        mine, theirs = (cost_curve(results, name, top, items).fixed_us for name in ("tributary", BASELINE))
        met = None if mine is None or theirs is None else mine <= theirs
        rows.append(
            (
                f"tributary fixed CPU per request <= fastapi's ({items} items, {top} conns)",
                f"{_fmt(mine, '.0f')} vs {_fmt(theirs, '.0f')} us",
                met,
            )
        )
    for items in args.payloads:
        for connections in args.connections:
            ratio_row(
                f"defaults within 5% of tuned: tributary-defaults / tributary ({items} items, {connections} conns)",
                _ratio(rps("tributary-defaults", connections, items), rps("tributary", connections, items)),
                TARGET_DEFAULTS,
            )
    for items in args.payloads:
        rss = results.peak_rss_by_items.get(("tributary", items))
        rows.append(
            (
                f"tributary peak RSS (1 worker, through {top} connections, {items} items) <= {TARGET_PEAK_RSS_MB:g} MB",
                f"{_fmt(rss, '.1f')} MB",
                None if rss is None else rss <= TARGET_PEAK_RSS_MB,
            )
        )
    for items in args.payloads:
        ratio_row(
            f"whole product ({WHOLE_PRODUCT}) req/s >= {TARGET_WHOLE_PRODUCT:g}x fastapi ({items} items, {top} conns)",
            _ratio(rps(WHOLE_PRODUCT, top, items), rps(BASELINE, top, items)),
            TARGET_WHOLE_PRODUCT,
            by_cpu(WHOLE_PRODUCT, BASELINE, top, items),
        )
    for items in args.payloads:
        ratio_row(
            f"2 workers (unpinned) req/s >= {TARGET_TWO_WORKER_SCALING:g}x 1 worker ({items} items, {top} conns)",
            _ratio(rps("tributary-2-workers", top, items), rps("tributary", top, items)),
            TARGET_TWO_WORKER_SCALING,
            # Two workers with two whole cores: twice one worker's rate, times how much CPU per request they need
            # compared to one (here they share the machine's two cores with the simulator and the load generator).
            None
            if (per_request := by_cpu("tributary-2-workers", "tributary", top, items)) is None
            else 2 * per_request,
        )
    print("\nTARGETS (issue 12; reported, not asserted; medians of interleaved rounds, pool 1000 unless named)")
    width = max(len(name) for name, _, _ in rows)
    for name, measured, met in rows:
        print(f"  {name:<{width}}  {measured:>27}  {_verdict(met)}")
    print(f"  {'zero thread hops per request':<{width}}  {'':>27}  asserted by tests/test_thread_hops.py, not here")
    print(
        "  (met / not met is judged on req/s as the issue states; 'by CPU' is the same ratio from CPU per request,"
        " for a machine whose other work takes part of the server's core: see 'other' in the tables)"
    )
    coalesced = results.summary("tributary-coalesced", 3, top, args.payloads[-1])
    fastapi_top = results.summary(BASELINE, 3, top, args.payloads[-1])
    if coalesced and fastapi_top:
        print(
            f"  for information, the published endpoint (tributary-coalesced) at {top} connections:"
            f" {_fmt(_ratio(coalesced.rps, fastapi_top.rps), '.2f')}x fastapi req/s with"
            f" {coalesced.upstream_per_request:.2f} upstream calls per request instead of 3"
        )


def print_key_costs(results: Results, args: argparse.Namespace) -> None:
    """What an API key and the rate limiter cost: each keyed row against the same server called anonymously."""
    measured = [
        (keyed, plain) for keyed, plain in KEYED_BASELINES.items() if any(k[0] == keyed for k in results.samples)
    ]
    if not measured:
        return
    print("\nAUTHENTICATION + RATE LIMITING (3 upstream calls per request; medians over runs)")
    print("  (CPU us/req: the server's CPU per request, steadier than req/s on a busy machine; +us: what the key adds)")
    print(
        f"  {'row':<20} {'vs':<16} {'items':>5} {'conns':>5} {'req/s':>8} {'vs req/s':>9} {'ratio':>6} {'cost':>6}"
        f" {'CPU us/req':>10} {'vs':>6} {'+us':>5}"
    )
    for keyed, plain in measured:
        for items in args.payloads:
            for connections in args.connections:
                mine = results.summary(keyed, 3, connections, items)
                theirs = results.summary(plain, 3, connections, items)
                ratio = _ratio(_rps(mine), _rps(theirs))
                cost = None if ratio is None else 100 * (1 - ratio)
                cpu, cpu_plain = _cpu_us(mine), _cpu_us(theirs)
                extra = None if cpu is None or cpu_plain is None else cpu - cpu_plain
                print(
                    f"  {keyed:<20} {plain:<16} {items:>5} {connections:>5} {_fmt(_rps(mine), '.1f'):>8}"
                    f" {_fmt(_rps(theirs), '.1f'):>9} {_fmt(ratio, '.3f'):>6} {_fmt(cost, '.1f'):>5}%"
                    f" {_fmt(cpu, '.0f'):>10} {_fmt(cpu_plain, '.0f'):>6} {_fmt(extra, '+.0f'):>5}"
                )
    high, items = max(args.connections), args.payloads[-1]
    ratio = _ratio(
        _rps(results.summary("tributary-key", 3, high, items)), _rps(results.summary("tributary", 3, high, items))
    )
    met = None if ratio is None else 1 - ratio <= TARGET_KEY_LIMIT_COST
    print(
        f"  target (issue 10): authentication + per-worker limiter cost <= {100 * TARGET_KEY_LIMIT_COST:g}% of req/s"
        f" at {high} connections, {items} items: {_fmt(None if ratio is None else 100 * (1 - ratio), '.1f')}%"
        f"  {_verdict(met)}"
    )


def print_observability_costs(results: Results, bench: Bench, args: argparse.Namespace) -> None:
    """What metrics and tracing cost: `tributary` (metrics on, as shipped) and `tributary-traced` against the same
    server with both off (`tributary-bare`), in the same run."""
    measured = [name for name in OBSERVABILITY_COSTS if any(key[0] == name for key in results.samples)]
    if not measured or not any(key[0] == "tributary-bare" for key in results.samples):
        return
    print("\nMETRICS AND TRACING (3 upstream calls per request; against tributary-bare: both off; medians over runs)")
    print(
        f"  {'row':<18} {'signal':<8} {'items':>5} {'conns':>5} {'req/s':>8} {'bare':>8} {'ratio':>6} {'cost':>6}"
        f" {'p50 ms':>7} {'CPU us/req':>10} {'bare':>6} {'CPU cost':>8}"
    )
    for name in measured:
        signal_name, _ = OBSERVABILITY_COSTS[name]
        for items in args.payloads:
            for connections in args.connections:
                mine = results.summary(name, 3, connections, items)
                bare = results.summary("tributary-bare", 3, connections, items)
                ratio = _ratio(_rps(mine), _rps(bare))
                cost = None if ratio is None else 100 * (1 - ratio)
                cpu, cpu_bare = _cpu_us(mine), _cpu_us(bare)
                cpu_ratio = _ratio(cpu, cpu_bare)
                cpu_cost = None if cpu_ratio is None else 100 * (cpu_ratio - 1)
                print(
                    f"  {name:<18} {signal_name:<8} {items:>5} {connections:>5} {_fmt(_rps(mine), '.1f'):>8}"
                    f" {_fmt(_rps(bare), '.1f'):>8} {_fmt(ratio, '.3f'):>6} {_fmt(cost, '.1f'):>5}%"
                    f" {_fmt(mine.p50_ms if mine else None, '.1f'):>7}"
                    f" {_fmt(cpu, '.0f'):>10} {_fmt(cpu_bare, '.0f'):>6} {_fmt(cpu_cost, '+.1f'):>7}%"
                )
    high, items = max(args.connections), args.payloads[-1]
    for name in measured:
        signal_name, target = OBSERVABILITY_COSTS[name]
        ratio = _ratio(
            _rps(results.summary(name, 3, high, items)), _rps(results.summary("tributary-bare", 3, high, items))
        )
        met = None if ratio is None else 1 - ratio <= target
        print(
            f"  target (issue 11): {signal_name} ({name}) cost <= {100 * target:g}% of req/s at {high} connections,"
            f" {items} items: {_fmt(None if ratio is None else 100 * (1 - ratio), '.1f')}%  {_verdict(met)}"
        )
    traced = [name for name in ("tributary-traced", "tributary-sampled") if name in measured]
    if traced:
        requests = {
            name: sum(s.requests for key, group in results.samples.items() if key[0] == name for s in group)
            for name in traced
        }
        print(
            f"  spans received by the collector double: {bench.spans_received}; measured requests: "
            + ", ".join(f"{name} {count}" for name, count in requests.items())
            + " (plus warm-up and readiness checks; 4 spans per traced request: the server span and 3 upstream calls)"
        )


def print_notes(results: Results, bench: Bench, args: argparse.Namespace) -> None:
    print("\nNotes")
    print("  spread: (max - min) / median of req/s over the runs. srv CPU: server CPU time / wall time, % of one core.")
    print(
        "  up/req: payloads the simulator served during a run per request answered: 3 = no call saved or repeated."
        " Above 3 when many requests are still in flight at the end of a run (latencies near the run's length)."
    )
    print(
        "  peak RSS: VmHWM summed over the server's process tree (uvicorn --workers 2: supervisor + both workers),"
        " read after the main runs."
    )
    top = max(args.connections)
    print(
        f"  ceiling: {top} connections with a {args.latency_ms:g} ms upstream allow at most"
        f" {top * 1000 / args.latency_ms:.0f} req/s (closed loop); a service near it is latency-bound, not CPU-bound."
    )
    samples = [sample for runs in results.samples.values() for sample in runs]
    if samples:
        load_side = max(s.percent_of_core(s.load_side_cpu) for s in samples)
        print(
            f"  load side: the simulator and the load generator used at most {load_side:.0f}% of a core in any run"
            + ("  <- it may have limited some runs" if load_side > 80 else "")
        )
        other = max(s.percent_of_core(s.other_cpu) for s in samples)
        print(
            "  other: CPU used by processes outside the benchmark during the run (all cores, steal included),"
            f" busiest run {other:.0f}% of a core"
            + ("  <- a busy machine: compare rounds, not single runs" if other > 20 else "")
        )
        not_idle = sum(not s.idle for s in samples)
        if not_idle:
            print(f"  {not_idle} run(s) started while a server was still busy after {IDLE_TIMEOUT_S:g} s.")
    for name, runs in results.samples.items():
        impl = BY_NAME[name[0]]
        if impl.workers > 1:
            splits = ", ".join("/".join(f"{s.percent_of_core(c):.0f}%" for c in s.worker_cpu) for s in runs)
            print(f"  {impl.name}: CPU of each worker per run at {name[2]} connections, {name[3]} items: {splits}")
    if results.newcomer_db_opened is not None:
        opened = "was opened" if results.newcomer_db_opened else "was never opened (no migrate needed)"
        print(f"  newcomer-adrf's SQLite database {opened}.")
    if not bench.placement.pinned:
        print(f"  {bench.placement.reason}: the server, simulator and load generator share every core.")


def print_header(
    args: argparse.Namespace, placement: Placement, load: LoadGenerator, impls: Sequence[Implementation]
) -> None:
    print("Tributary benchmark: the same load against each implementation, in one run")
    print(f"  machine: {cpu_model()}, {os.cpu_count()} cores (allowed: {placement.all_cores}), {platform.system()}")
    print(
        f"  python {platform.python_version()}; "
        + ", ".join(
            f"{p} {version(p)}"
            for p in (
                "django",
                "djangorestframework",
                "adrf",
                "fastapi",
                "pydantic",
                "httpx",
                "httpx-aiohttp",
                "uvicorn",
            )
        )
    )
    print(f"  placement: {placement.reason}")
    print(f"  code: {code_state()}")
    print(f"  machine load at start: {machine_load()}")
    print(
        f"  load: {load.label}; uvicorn {' '.join(fast_uvicorn_flags()) or '(default loop and parser)'}, 1 worker"
        " unless named otherwise"
    )
    simulator = "benchmarks/upstream.py (Python fallback)" if args.python_upstream else "benchmarks/upstream.js (node)"
    print(
        f"  upstream: {simulator}, {args.latency_ms:g} ms fixed latency, payloads of"
        f" {' and '.join(map(str, args.payloads))} items per call (5: ~0.4 KB, 40: ~2.3 KB);"
        f" upstream pool {POOL} for every implementation but tributary-defaults"
    )
    levels = ", ".join(map(str, args.connections))
    print(
        f"  plan: {len(impls)} implementation(s) x payloads {','.join(map(str, args.payloads))} x connections {levels}"
        f" x {args.runs} run(s) of {args.duration:g} s, cost curve at {','.join(map(str, args.curve_payloads))} items;"
        f" estimated {estimate_seconds(args, impls) / 60:.1f} min"
    )
    command = [
        ".venv/bin/python",
        "benchmarks/run.py",
        "--runs",
        str(args.runs),
        "--duration",
        f"{args.duration:g}",
        "--connections",
        ",".join(map(str, args.connections)),
        "--latency-ms",
        f"{args.latency_ms:g}",
        "--payloads",
        ",".join(map(str, args.payloads)),
        "--curve-payloads",
        ",".join(map(str, args.curve_payloads)),
        "--only",
        ",".join(impl.name for impl in impls),
    ]
    print(f"  reproduce: cd {ROOT} && {shlex.join(command)}")


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def code_state() -> str:
    """The commit measured and whether the working tree differs from it where the service's code lives."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "api", "upstreams", "config"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    changed = f"{len(dirty)} uncommitted change(s) in api/ upstreams/ config/ measured too" if dirty else "clean"
    return f"commit {head}, {changed}"


def estimate_seconds(args: argparse.Namespace, impls: Sequence[Implementation]) -> float:
    runs: int = args.runs
    duration: float = args.duration
    per_run = duration + 1.0  # load generator start-up, waiting for idle, /proc readings
    start = (3.0 + min(WARM_UP_S, duration)) * len(impls) + 2
    main = runs * len(impls) * len(args.connections) * len(args.payloads) * per_run
    curve = runs * sum(impl.cost_curve for impl in impls) * 2 * len(args.curve_payloads) * per_run
    return start + main + curve


# --- Entry point ---------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds; medians over them are reported (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    parser.add_argument(
        "--connections",
        default="64,256",
        help="load levels, comma-separated (default 64,256: latency-bound, saturated; add 8 for the idle latency)",
    )
    parser.add_argument(
        "--payloads", default="5,40", help="items per upstream payload, comma-separated (default 5,40: ~0.4, ~2.3 KB)"
    )
    parser.add_argument(
        "--curve-payloads",
        default="",
        help="payload sizes of the 1/3/10-call cost curve (default: the smallest of --payloads; 'none' skips it)",
    )
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the simulator's fixed latency (default 50)")
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_SET),
        help=f"comma-separated subset of: {', '.join(BY_NAME)}; 'all' for every one (default: {','.join(DEFAULT_SET)})",
    )
    parser.add_argument("--quick", action="store_true", help="1 run of 2 s per level: a smoke test of the harness")
    parser.add_argument("--python-load", action="store_true", help="use benchmarks/loadgen.py even if wrk exists")
    parser.add_argument(
        "--python-upstream", action="store_true", help="use benchmarks/upstream.py even if node is installed"
    )
    args = parser.parse_args(argv)
    args.python_upstream = args.python_upstream or shutil.which("node") is None
    if args.quick:
        args.runs, args.duration = 1, 2.0
    try:
        args.connections = sorted({int(n) for n in args.connections.split(",") if n.strip()})
        args.payloads = sorted({int(n) for n in args.payloads.split(",") if n.strip()})
        if args.curve_payloads.strip() == "none":
            args.curve_payloads = []
        elif args.curve_payloads.strip():
            args.curve_payloads = sorted({int(n) for n in args.curve_payloads.split(",") if n.strip()})
        else:
            args.curve_payloads = args.payloads[:1]
    except ValueError:
        parser.error("--connections, --payloads and --curve-payloads take comma-separated whole numbers, e.g. 64,256")
    if args.only.strip() == "all":
        args.only = ",".join(BY_NAME)
    unknown = [name for name in args.only.split(",") if name.strip() and name.strip() not in BY_NAME]
    if unknown:
        parser.error(f"unknown implementation(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    if args.runs < 1 or args.duration <= 0 or not args.connections or min(args.connections) < 1:
        parser.error("--runs, --duration and --connections must be positive")
    if not args.payloads or min(args.payloads) < 1 or (args.curve_payloads and min(args.curve_payloads) < 1):
        parser.error("--payloads and --curve-payloads must be positive")
    return args


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through `finally`, which stops every server


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = {name.strip() for name in args.only.split(",") if name.strip()}
    impls = [impl for impl in IMPLEMENTATIONS if not chosen or impl.name in chosen]
    placement = Placement.detect()
    load = LoadGenerator(placement, None if args.python_load else shutil.which("wrk"))
    signal.signal(signal.SIGTERM, _terminate)
    print_header(args, placement, load, impls)
    print()
    wall = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tributary-bench-") as work:
        bench = Bench(args, placement, load, Path(work))
        try:
            bench.run(impls)
        except (RuntimeError, OSError) as exc:
            print(f"\nBENCHMARK ABORTED: {exc}")
            return 1
        finally:
            bench.servers.stop_all()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    leftovers = bench.servers.leftovers()
    for items in args.payloads:
        for connections in args.connections:
            print_level_table(bench.results, impls, connections, items)
    for items in args.curve_payloads:
        print_cost_table(bench.results, impls, max(args.connections), items)
    print_key_costs(bench.results, args)
    print_observability_costs(bench.results, bench, args)
    print_notes(bench.results, bench, args)
    print_issue12_table(bench.results, bench, args)
    print_defaults(bench.results, args)
    print_features(bench.results, args)
    print_targets(bench.results, args)
    stopped = f"still running: {', '.join(leftovers)}" if leftovers else "every process it started has stopped"
    print(f"\nMachine load at the end: {machine_load()}")
    print(
        f"\nDone in {time.monotonic() - wall:.0f} s (servers, simulator and load generator used"
        f" {children.ru_utime + children.ru_stime:.0f} CPU s); {stopped}."
    )
    return 1 if bench.results.failed or leftovers else 0


if __name__ == "__main__":
    sys.exit(main())
