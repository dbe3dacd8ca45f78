"""The ASGI entry point: Django (through a handler that keeps every request on the event loop), plus what Django's
ASGI handler does not do.

- Validation: importing this module validates the whole configuration (settings and Django's system checks) and
  exits with every problem listed if anything is wrong, so `uvicorn config.asgi:application` never serves with a
  bad configuration, whatever its flags.
- Lifespan: Django ignores the ASGI lifespan protocol. At start-up we build the upstream registry; at shutdown we
  close every pooled upstream client of this worker's event loop.
- `/demo/...`: the built-in demo upstreams (settings.DEMO_UPSTREAMS), a plain ASGI app served beside Django so
  `make run` aggregates real HTTP calls with no network.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
# Every configuration problem at once, without a traceback, before the server takes a request (config/startup.py).
from config.startup import exit_if_misconfigured, raise_open_files_limit

exit_if_misconfigured()
django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402 - after Django is set up

from config import metrics, tracing  # noqa: E402
from config.handler import TributaryASGIHandler  # noqa: E402

# Django's ASGI handler, minus the thread it starts per request (see config/handler.py).
django_application = TributaryASGIHandler()

from api import database  # noqa: E402
from api.clients import ratelimit  # noqa: E402
from api.clients.keys import last_used  # noqa: E402
from upstreams import ConfigError, close_registry, get_registry  # noqa: E402
from upstreams.demo import DemoApp, DemoOptions, parse_faults  # noqa: E402

logger = logging.getLogger("tributary.asgi")

Scope = dict[str, Any]
DEMO_PREFIX = "/demo"


def _demo_app() -> DemoApp | None:
    if not settings.DEMO_UPSTREAMS:
        return None
    return DemoApp(DemoOptions(latency_ms=settings.DEMO_LATENCY_MS, faults=parse_faults(settings.DEMO_FAULTS)))


demo_application = _demo_app()


async def application(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope.get("path", "")
    if demo_application is not None and (path == DEMO_PREFIX or path.startswith(DEMO_PREFIX + "/")):
        scope = {
            **scope,
            "path": path[len(DEMO_PREFIX) :] or "/",
            "root_path": scope.get("root_path", "") + DEMO_PREFIX,
        }
        await demo_application(scope, receive, send)
        return
    await django_application(scope, receive, send)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                registry = get_registry()
            except (ConfigError, ValueError) as exc:
                await send({"type": "lifespan.startup.failed", "message": f"Invalid upstream configuration: {exc}"})
                return
            logger.info("Upstreams: %s", ", ".join(f"{c.name}={c.host}" for c in registry.configs.values()))
            raise_open_files_limit(sum(c.max_connections for c in registry.configs.values()))
            _tune_garbage_collector()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await close_registry()
            await last_used().stop()  # the API keys' last-used times not yet written
            await ratelimit.aclose()  # the rate limiter's Redis connections, if any
            await database.close_pools()  # this loop's native PostgreSQL connections (api/database.py)
            await send({"type": "lifespan.shutdown.complete"})
            return


def _tune_garbage_collector() -> None:
    """Move everything loaded at start-up (Django, DRF, the URLconf: long-lived) out of the collector's sight, and
    collect the young generation less often. Requests allocate many short-lived objects; without this the cyclic
    collector rescans the framework's objects over and over (15-25% of a request's CPU, profiled).

    A served request leaves no reference cycle (tests/config/test_request_cycles.py): its objects are freed by
    reference counting, so the threshold no longer trades memory for CPU. Measured at 256 connections (wrk, 5 items,
    3 calls): peak RSS 96 MB at 700, 95 MB at 2,000, 96-99 MB at 10,000 and 91-96 MB at 50,000, while 700 costs ~100
    us more CPU per request than 10,000 (the collector traverses the requests in flight, not garbage), and 10,000
    spends ~900 ms per 10 s of load in the collector against ~150 ms at 50,000 (below)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


# A collection of the young generation scans every object allocated since the last one that is still alive: under
# load, that is the in-flight requests' coroutines, tasks and buffers (~50,000 objects at 256 connections, 10-15 ms
# per collection), nearly all of which survive it. Requests leave no cycles (config/handler.py), so collecting less
# often frees nothing later: at 256 connections, 10,000 -> 50,000 took the collector from ~900 to ~150 ms of CPU per
# 10 s of load (gc.callbacks), with the same peak RSS (91-96 MB).
GC_YOUNG_THRESHOLD = 50_000


# Operating (README "Operating Tributary"): upstream-call metrics (config/metrics.py), and traces when the OTEL_*
# variables configure them: an ASGI server span around everything, upstream calls as its children (config/tracing.py).
if settings.METRICS_ENABLED:
    metrics.install()
if settings.TRACING_ENABLED:
    application = tracing.instrument(application, tracing.provider_from_environment())
