"""``manage.py demo_upstreams``: serve the built-in demo upstreams on their own port.

Handy when the aggregator should reach its upstreams over a separate socket, as it would in production, rather
than through the ``/demo`` mount in ``config/asgi.py``. Paths here have no ``/demo`` prefix
(``http://127.0.0.1:8001/catalog/products``). Latency and faults default to the ``DEMO_LATENCY_MS`` and
``DEMO_FAULTS`` settings and can be overridden per run.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from upstreams.demo import FAULT_KINDS, DemoApp, DemoOptions, parse_faults


class Command(BaseCommand):
    help = "Run the deterministic demo upstreams (slow, catalog, inventory, reviews, fx) standalone."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default: %(default)s).")
        parser.add_argument("--port", type=int, default=8001, help="Port to bind (default: %(default)s).")
        parser.add_argument(
            "--latency-ms",
            type=float,
            # getattr: the settings may not define these, and the demo should still run.
            default=float(getattr(settings, "DEMO_LATENCY_MS", 100.0)),
            help="Base latency in ms; each endpoint sleeps a multiple of it (default: %(default)s).",
        )
        parser.add_argument(
            "--faults",
            default=str(getattr(settings, "DEMO_FAULTS", "")),
            help=(
                "Faults per service, e.g. 'reviews=timeout,inventory=500' (default: %(default)r). "
                f"Kinds: {', '.join(FAULT_KINDS)}, or an HTTP status from 400 to 599."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host: str = options["host"]
        port: int = options["port"]
        latency_ms: float = options["latency_ms"]
        spec: str = options["faults"]
        try:
            app = DemoApp(DemoOptions(latency_ms=latency_ms, faults=parse_faults(spec)))
        except ValueError as exc:
            # A typo on the command line deserves a one-line error, not a traceback.
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Demo upstreams on http://{host}:{port} (latency {latency_ms:g} ms, faults: {spec or 'none'})"
        )
        uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="off")
