"""Django app for upstreams/: registers the configuration check, so `manage.py check` lints upstream settings."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

from .config import ConfigError, parse_upstreams
from .demo import parse_faults
from .registry import TRANSPORTS


class UpstreamsConfig(AppConfig):
    name = "upstreams"
    verbose_name = "Upstreams"

    def ready(self) -> None:
        checks.register(check_upstream_settings, "upstreams")


def check_upstream_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    try:
        parse_upstreams(getattr(settings, "UPSTREAMS", {}))
    except ConfigError as exc:
        errors += [checks.Error(problem, id="upstreams.E001") for problem in exc.problems]
    transport = getattr(settings, "UPSTREAM_TRANSPORT", "aiohttp")
    if transport not in TRANSPORTS:
        errors.append(
            checks.Error(f"UPSTREAM_TRANSPORT={transport!r} must be one of {sorted(TRANSPORTS)}", id="upstreams.E002")
        )
    deadline = getattr(settings, "AGGREGATE_DEADLINE", 10.0)
    if not isinstance(deadline, int | float) or deadline <= 0:
        errors.append(checks.Error(f"AGGREGATE_DEADLINE={deadline!r} must be a positive number", id="upstreams.E003"))
    redis_url = getattr(settings, "REDIS_URL", None)
    if redis_url and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        errors.append(
            checks.Error(f"REDIS_URL={redis_url!r} must be a redis://, rediss:// or unix:// URL", id="upstreams.E005")
        )
    try:
        parse_faults(getattr(settings, "DEMO_FAULTS", ""))
    except ValueError as exc:
        errors.append(checks.Error(f"DEMO_FAULTS: {exc}", id="upstreams.E004"))
    return errors
