"""Django app for api/: checks that every aggregate names a configured upstream."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "API"

    def ready(self) -> None:
        checks.register(check_aggregate_upstreams, "upstreams")
        from .middleware import recognise_in_deploy_checks

        recognise_in_deploy_checks()  # our async SecurityMiddleware counts as Django's for `check --deploy`
        from .clients.keys import connect_signals

        connect_signals()  # a key or client saved here empties this worker's key cache at once
        # The API keys' OpenAPI extension (api/clients/schema.py) is registered when a schema is first generated
        # (api/schema.py `load_generator`), not here: it would load drf-spectacular's generator into every worker.


def check_aggregate_upstreams(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from . import aggregates
    from .aggregation import published

    assert aggregates  # imported for its declarations

    configured = set(getattr(settings, "UPSTREAMS", {}))
    return [
        checks.Error(
            f"aggregate {aggregate.__name__} uses upstream {name!r}, which is not configured",
            hint=f"Set UPSTREAM_{name.upper()}_URL.",
            id="api.E001",
        )
        for aggregate in published()
        for name in sorted(aggregate.upstream_names() - configured)
    ]
