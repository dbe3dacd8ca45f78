"""What a worker loads at start-up (config/asgi.py), in a fresh process: the packages that only some features need
are imported when a feature is configured or first used, never by every worker. Each of them costs idle memory in
every worker (modules, their objects, shared libraries): about 30 MB in all, when this test was written.

Each test imports `config.asgi` in a subprocess with the production settings (SQLite, no Redis, no tracing: what
`make bench` runs) and reads `sys.modules`; the control tests configure the feature, or use it, and see the package
load, so an assertion that a package is absent cannot pass because the package is never imported at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "startup-imports",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    "API_KEYS_REQUIRED": "false",
    **{f"UPSTREAM_{name}_URL": "http://127.0.0.1:9" for name in ("SLOW", "CATALOG", "INVENTORY", "REVIEWS", "FX")},
}
# Variables that would switch a feature on from the developer's or CI's environment.
FEATURE_VARIABLES = ("REDIS_", "DATABASE_", "OTEL_", "DJANGO_", "UPSTREAM_", "DEMO_", "METRICS_", "API_KEYS_")

# Package -> the feature that needs it.
OPTIONAL = {
    "opentelemetry": "traces (OTEL_* variables)",
    "redis": "REDIS_URL",
    "psycopg": "PostgreSQL (DATABASE_URL=postgres://...)",
    "yaml": "the schema and docs pages (api/docs.py)",
    # Imported by libraries only because they are installed (config/footprint.py).
    "rich": "httpx's command-line client",
    "pygments": "httpx's command-line client, DRF's browsable API",
    "requests": "DRF's test client",
    "jinja2": "Django's own test suite",
    # drf-spectacular's generator imports django.test (DRF's test module): only when a schema is generated.
    "unittest": "schema generation (drf-spectacular's plumbing)",
    "uritemplate": "schema generation",
}
# Modules of drf-spectacular's that only schema generation and the docs pages need (api/schema.py, api/docs.py).
GENERATOR_MODULES = {"drf_spectacular.openapi", "drf_spectacular.plumbing", "drf_spectacular.generators"}
DOCS_MODULES = {"api.docs", "drf_spectacular.views", "drf_spectacular.renderers", *GENERATOR_MODULES}

# A request through the ASGI application, in the subprocess: GET `path`, then `status` and `body` are set.
ASGI_GET = """
import asyncio

async def _get(path):
    sent, requests = [], [{"type": "http.request", "body": b"", "more_body": False}]
    async def receive():
        if requests:
            return requests.pop()
        await asyncio.Event().wait()
    async def send(message):
        sent.append(message)
    query = path.partition("?")[2].encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path.partition("?")[0], "raw_path": path.encode(), "query_string": query, "root_path": "",
        "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }
    await config.asgi.application(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

status, body = asyncio.run(_get(PATH))
"""


def loaded_modules(env: dict[str, str] | None = None, *, then: str = "") -> set[str]:
    """The modules a fresh process holds after `import config.asgi` (and `then`, run after it)."""
    script = f"import json, sys\nimport config.asgi\n{then}\nprint(json.dumps(sorted(sys.modules)))\n"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(FEATURE_VARIABLES)}
    environ.update(PRODUCTION)
    environ.update(env or {})
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def packages(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


@pytest.fixture(scope="module")
def default_worker() -> set[str]:
    return loaded_modules()


@pytest.mark.parametrize("package", OPTIONAL)
def test_a_worker_without_the_feature_does_not_import_it(default_worker: set[str], package: str) -> None:
    assert package not in packages(default_worker), f"{package} is for {OPTIONAL[package]} only"


def test_tracing_configured_imports_opentelemetry() -> None:
    modules = loaded_modules({"OTEL_TRACES_EXPORTER": "console"})
    assert {"opentelemetry.trace", "opentelemetry.sdk.trace", "opentelemetry.instrumentation.asgi"} <= modules


def test_redis_url_imports_redis_for_the_rate_limiter() -> None:
    # Nothing connects: the limiter and the breakers make their clients on first use, in the event loop.
    then = "from api.clients import ratelimit\nassert type(ratelimit.limiter()).__name__ == 'RedisLimiter'"
    assert "redis.asyncio" in loaded_modules({"REDIS_URL": "redis://127.0.0.1:9/0"}, then=then)


def test_requests_to_the_api_leave_the_schema_generator_and_docs_unloaded() -> None:
    then = "\n".join(
        ASGI_GET.replace("PATH", repr(path)) + f"assert status == {status}, (status, body)"
        for path, status in (("/healthz", 200), ("/api/upstreams/", 200), ("/api/products/", 503))
    )
    modules = loaded_modules(then=then)
    assert not DOCS_MODULES & modules


def test_a_schema_generated_in_process_has_the_api_key_schemes() -> None:
    # What tests and tools do: drf-spectacular's own generator, with nothing of ours imported first.
    then = (
        "from drf_spectacular.generators import SchemaGenerator\n"
        "schema = SchemaGenerator().get_schema(request=None, public=True)\n"
        "assert set(schema['components']['securitySchemes']) == {'ApiKeyAuth', 'BearerAuth'}, schema['components']"
    )
    assert loaded_modules(then=then) >= GENERATOR_MODULES


def test_the_schema_page_loads_drf_spectacular_and_serves_the_committed_schema() -> None:
    then = ASGI_GET.replace("PATH", "'/api/schema/'") + (
        "assert status == 200, (status, body)\n"
        "from pathlib import Path\n"
        "assert body == Path('openapi/schema.yaml').read_bytes(), 'the served schema is not the committed one'"
    )
    modules = loaded_modules(then=then)
    assert modules >= DOCS_MODULES
    assert "yaml" in packages(modules)


def test_postgresql_imports_psycopg_and_drf_maps_its_fields() -> None:
    then = (
        "from rest_framework import compat\n"
        "assert compat.postgres_fields is not None\n"
        "from django.db import connection\n"
        "assert connection.vendor == 'postgresql'"
    )
    modules = loaded_modules({"DATABASE_URL": "postgres://user:secret@127.0.0.1:9/tributary"}, then=then)
    assert "psycopg" in packages(modules)


def test_sqlite_leaves_drf_without_postgresql_fields() -> None:
    then = "from rest_framework import compat\nassert compat.postgres_fields is None\nassert compat.requests is None"
    loaded_modules(then=then)


def test_the_hidden_packages_import_normally_after_start_up() -> None:
    # config/footprint.py hides them while a library probes for them, and only then.
    modules = loaded_modules(then="import httpx._main, jinja2, psycopg, pygments, requests, rich, uritemplate, yaml")
    assert modules >= {"httpx._main", "jinja2", "psycopg", "pygments", "requests", "rich", "uritemplate", "yaml"}


def test_redis_url_imports_redis_for_the_breakers() -> None:
    then = "from upstreams import get_registry\nget_registry()"
    assert "redis.asyncio" in loaded_modules({"REDIS_URL": "redis://127.0.0.1:9/0"}, then=then)


def test_the_launcher_imports_uvicorn_without_its_file_watcher() -> None:
    # `python -m config.serve` never reloads; uvicorn alone imports watchfiles for `--reload` (the control).
    def watches(module: str) -> str:
        script = f"import sys\nimport {module}\nprint('watchfiles' in sys.modules)"
        result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
        return result.stdout.strip()

    assert (watches("config.serve"), watches("uvicorn")) == ("False", "True")
