"""Django app for upstreams/: registers the configuration check, so `manage.py check` lints upstream settings.

`settings_problems()` is the one set of rules for the upstream-related settings: each settings module applies it at
start-up (config/env.py), and the system check applies it to whatever the settings are now (tests change them)."""

from __future__ import annotations

from collections.abc import Mapping
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


# Below this, every request would answer 504 before an upstream could answer (loopback calls take milliseconds).
MIN_AGGREGATE_DEADLINE = 0.1


def check_upstream_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    values = {name: getattr(settings, name) for name in _CHECKED if hasattr(settings, name)}
    return [checks.Error(message, id=check_id) for check_id, message in settings_problems(values)]


_CHECKED = ("UPSTREAMS", "UPSTREAM_TRANSPORT", "AGGREGATE_DEADLINE", "REDIS_URL", "DEMO_FAULTS")


def settings_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every problem in the upstream-related settings, as (check id, message): the system check reports them, and
    each settings module raises them at start-up (config/env.py `raise_problems`)."""
    problems: list[tuple[str, str]] = []
    try:
        parse_upstreams(values.get("UPSTREAMS", {}))
    except ConfigError as exc:
        problems += [("upstreams.E001", problem) for problem in exc.problems]
    transport = values.get("UPSTREAM_TRANSPORT", "aiohttp")
    if transport not in TRANSPORTS:
        problems.append(("upstreams.E002", f"UPSTREAM_TRANSPORT={transport!r} must be one of {sorted(TRANSPORTS)}"))
    deadline = values.get("AGGREGATE_DEADLINE", 10.0)
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not deadline >= MIN_AGGREGATE_DEADLINE:
        problems.append(
            ("upstreams.E003", f"AGGREGATE_DEADLINE={deadline!r} must be a number of at least {MIN_AGGREGATE_DEADLINE}")
        )
    redis_url = values.get("REDIS_URL")
    if redis_url and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        problems.append(("upstreams.E005", f"REDIS_URL={redis_url!r} must be a redis://, rediss:// or unix:// URL"))
    try:
        parse_faults(values.get("DEMO_FAULTS", ""))
    except ValueError as exc:
        problems.append(("upstreams.E004", f"DEMO_FAULTS: {exc}"))
    return problems
