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
}


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


def test_redis_url_imports_redis_for_the_breakers() -> None:
    then = "from upstreams import get_registry\nget_registry()"
    assert "redis.asyncio" in loaded_modules({"REDIS_URL": "redis://127.0.0.1:9/0"}, then=then)
