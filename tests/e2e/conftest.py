"""End-to-end fixtures: the demo upstreams and the service, each a real process on a free loopback port.

`live_service` starts ``manage.py demo_upstreams`` and uvicorn as a deployment would run them (local settings,
the in-process demo mount off, every upstream pointed at the demo process by ``UPSTREAM_<NAME>_URL``), waits
until both answer, yields the service's base URL and always stops both; `running_service` does the same for one
test, with other settings (production's). Their output goes to log files, whose
tail is in the failure message when start-up goes wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port
from upstreams import declared

REPO_ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_NAMES = declared.demo_names()
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class _Probe:
    """A started process and the URL that answers 200 once it is ready."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])


def _subprocess_env(*, demo_url: str) -> dict[str, str]:
    """The test process's environment minus its Django settings and upstreams, plus the service's own."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("UPSTREAM_", "DEMO_")) and key != "DJANGO_SETTINGS_MODULE"
    }
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", DEMO_UPSTREAMS="false", PYTHONUNBUFFERED="1")
    env.update({f"UPSTREAM_{name.upper()}_URL": f"{demo_url}/{name}" for name in UPSTREAM_NAMES})
    return env


@contextmanager
def _running(args: list[str], *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run `args` from the repository root, output to `log`; terminate (then kill) it on the way out."""
    with log.open("wb") as output:
        process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)


def _wait_until_ready(probes: list[_Probe]) -> None:
    """Poll every probe until it answers 200; fail with the log tail if its process exits or time runs out."""
    pending = list(probes)
    last_answer = dict.fromkeys((probe.name for probe in probes), "no answer yet")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(timeout=2.0) as client:
        while pending:
            for probe in list(pending):
                if probe.process.poll() is not None:
                    pytest.fail(
                        f"{probe.name} exited with status {probe.process.returncode} during start-up "
                        f"(log {probe.log}):\n{probe.tail()}"
                    )
                try:
                    status = client.get(probe.url).status_code
                except httpx.TransportError as exc:
                    last_answer[probe.name] = repr(exc)  # usually: not listening yet
                    continue
                last_answer[probe.name] = f"status {status}"
                if status == 200:
                    pending.remove(probe)
            if pending and time.monotonic() > deadline:
                details = "\n\n".join(
                    f"{p.name}: GET {p.url} -> {last_answer[p.name]} (log {p.log}):\n{p.tail()}" for p in pending
                )
                pytest.fail(f"not ready after {STARTUP_TIMEOUT:g} s\n\n{details}")
            if pending:
                time.sleep(0.1)


def _two_free_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


@contextmanager
def running_service(logs: Path, *, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """The demo upstreams and the service under uvicorn, each on a free loopback port, until the block ends.

    Local settings unless `env` says otherwise (e.g. production's settings module and required variables); yields
    the service's base URL.
    """
    demo_port, service_port = _two_free_ports()
    demo_url = f"http://127.0.0.1:{demo_port}"
    service_url = f"http://127.0.0.1:{service_port}"
    service_env = {**_subprocess_env(demo_url=demo_url), **(env or {})}
    demo_args = [sys.executable, "manage.py", "demo_upstreams"]
    demo_args += ["--host", "127.0.0.1", "--port", str(demo_port), "--latency-ms", "0"]
    service_args = [sys.executable, "-m", "uvicorn", "config.asgi:application"]
    service_args += ["--host", "127.0.0.1", "--port", str(service_port), "--lifespan", "on"]
    service_args += ["--http", "config.http:BoundedHttpToolsProtocol"]  # as `make run` and config.serve serve it
    # Without the access log, the log tail in a start-up failure shows the start-up, not the health probes.
    service_args += ["--no-access-log"]
    with ExitStack() as stack:
        demo_log, service_log = logs / "demo.log", logs / "service.log"
        # The demo command runs under local settings whatever the service's are: it only serves the demo data.
        demo = stack.enter_context(_running(demo_args, env=_subprocess_env(demo_url=demo_url), log=demo_log))
        service = stack.enter_context(_running(service_args, env=service_env, log=service_log))
        _wait_until_ready(
            [
                # Any demo endpoint will do: a 200 means the command took its options and the port is open.
                _Probe("demo upstreams", demo, f"{demo_url}/catalog/products/1", demo_log),
                _Probe("service", service, f"{service_url}/healthz", service_log),
            ]
        )
        yield service_url


@pytest.fixture(scope="session")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service's base URL (``http://127.0.0.1:<port>``); its upstreams are the demo process."""
    with running_service(tmp_path_factory.mktemp("live_service")) as url:
        yield url


@dataclass(frozen=True)
class KeyedService:
    """A service that requires API keys, its database, and a key made for it by `manage.py create_api_key`."""

    url: str
    key: str
    env: Mapping[str, str]

    def manage(self, *args: str) -> str:
        """Run a management command against the service's database; its standard output."""
        return _manage(list(args), env=self.env)


def _manage(args: list[str], *, env: Mapping[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=dict(env), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@contextmanager
def keyed_service(logs: Path, *, database_url: str, env: Mapping[str, str] | None = None) -> Iterator[KeyedService]:
    """The service with `API_KEYS_REQUIRED=true` on `database_url`, migrated, with one client key made from the
    command line, as an operator would (`env`: more of the service's environment, e.g. production's)."""
    # A short key-cache TTL, so a revocation from another process shows within seconds.
    env = {**(env or {}), "API_KEYS_REQUIRED": "true", "DATABASE_URL": database_url, "API_KEY_CACHE_TTL": "2"}
    command_env = {**_subprocess_env(demo_url="http://127.0.0.1:9"), **env}
    _manage(["migrate", "--no-input", "--verbosity", "0"], env=command_env)
    key = _manage(["create_api_key", "e2e-client", "--name", "e2e"], env=command_env).strip()
    with running_service(logs, env=env) as url:
        yield KeyedService(url=url, key=key, env=command_env)


@pytest.fixture(scope="session")
def keyed_sqlite_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedService]:
    logs = tmp_path_factory.mktemp("keyed_sqlite_service")
    with keyed_service(logs, database_url=f"sqlite:///{logs / 'db.sqlite3'}") as service:
        yield service


@pytest.fixture(scope="session")
def keyed_postgres_service(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[KeyedService]:
    with keyed_service(tmp_path_factory.mktemp("keyed_postgres_service"), database_url=postgres_url) as service:
        yield service
