"""Reading the environment: the only module that does. Every problem is collected, none stops the reading.

Each reader returns a usable default when a value is bad and records a message naming the variable, so one start-up
finds every problem. The last line of each settings module (local, test, production) is `raise_problems(globals())`:
it adds what the settings-level validation finds in the values read (the upstream settings through
`upstreams.config.parse_upstreams`, which also names each variable) and raises one `ConfigurationProblems` listing
all of them. Every entry point prints that list without a traceback (`config/startup.py`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from upstreams.config import KEYS as UPSTREAM_KEYS
from upstreams.config import variable_problems

__all__ = [
    "GLOBAL_UPSTREAM_VARIABLES",
    "ConfigurationProblems",
    "database_settings",
    "env",
    "env_bool",
    "env_choice",
    "env_float",
    "env_int",
    "env_list",
    "raise_problems",
    "require",
    "require_list",
    "upstream_settings",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# Variables that start with UPSTREAM_ but configure no single upstream (so they are not UPSTREAM_<NAME>_<KEY>).
GLOBAL_UPSTREAM_VARIABLES = frozenset({"UPSTREAM_TRANSPORT"})

# What reading found wrong so far, in order, without duplicates (base.py and local.py may read a variable twice).
_problems: list[str] = []


class ConfigurationProblems(ImproperlyConfigured):
    """The configuration is invalid; `problems` lists every message, each naming the variable to fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _problem(message: str) -> None:
    if message not in _problems:
        _problems.append(message)


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def require(name: str) -> str:
    """A variable with no default (a secret in production): missing means the process does not start."""
    value = os.environ.get(name, "").strip()
    if not value:
        _problem(f"The environment variable {name} must be set.")
    return value


def require_list(name: str) -> list[str]:
    """A required comma-separated list (production's allowed hosts)."""
    values = [item.strip() for item in require(name).split(",") if item.strip()]
    if not values and os.environ.get(name, "").strip():
        _problem(f"The environment variable {name} must be set (a comma-separated list, not only commas).")
    return values


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    _problem(f"{name}={raw!r} must be one of true/false, 1/0, yes/no, on/off.")
    return default


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        _problem(f"{name}={raw!r} must be a number (at least {minimum:g}).")
        return default
    if not value >= minimum or value == float("inf"):
        _problem(f"{name}={raw!r} must be a number of at least {minimum:g}.")
        return default
    return value


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        high = f" and at most {maximum}" if maximum is not None else ""
        _problem(f"{name}={raw!r} must be a whole number of at least {minimum}{high}.")
        return default
    return value


def env_choice(name: str, default: str, *, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip() not in choices:
        _problem(f"{name}={raw!r} must be one of {', '.join(choices)}.")
        return default
    return raw.strip()


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_settings(*, sqlite_default: str) -> dict[str, Any]:
    """Django's `DATABASES["default"]` from `DATABASE_URL`.

    `postgres://user:password@host:port/name` (or `postgresql://`): the PostgreSQL backend on psycopg 3, with
    Django 5.2's connection pool sized per worker (`DATABASE_POOL_MIN_SIZE`, `DATABASE_POOL_MAX_SIZE`,
    `DATABASE_POOL_TIMEOUT`).
    A `host` query parameter names a unix socket directory (`postgres:///name?host=/run/postgresql`); the other
    query parameters are psycopg connection parameters (`?sslmode=require&application_name=tributary`).
    `sqlite:///relative/path`, `sqlite:////absolute/path`, or unset: SQLite (unset: `SQLITE_PATH`, else
    `sqlite_default`), the embedded default that needs nothing installed.
    Anything else is a problem, and SQLite is returned so the reading goes on.
    """
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": env("SQLITE_PATH", sqlite_default)}
    raw = os.environ.get("DATABASE_URL", "").strip()
    if not raw:
        return sqlite
    shown = raw
    try:
        url = urlsplit(raw)
        port = url.port
    except ValueError:
        url, port = None, None
    if url is not None and url.password:
        shown = raw.replace(url.password, "***")
    if url is None:
        _problem(f"DATABASE_URL={shown!r} is not a URL (postgres://user:password@host:port/name or sqlite:///path).")
        return sqlite
    if url.scheme == "sqlite":
        path = unquote(url.path[1:] if url.path.startswith("/") else url.path)
        if url.netloc or not path:
            _problem(f"DATABASE_URL={shown!r} must be sqlite:///relative/path or sqlite:////absolute/path.")
            return sqlite
        return {**sqlite, "NAME": path}
    if url.scheme not in ("postgres", "postgresql"):
        _problem(f"DATABASE_URL={shown!r} must start with postgres://, postgresql:// or sqlite:///.")
        return sqlite
    name = unquote(url.path.lstrip("/"))
    query = dict(item.split("=", 1) for item in url.query.split("&") if "=" in item)
    host = unquote(query.get("host", "")) or unquote(url.hostname or "")
    if not name:
        _problem(f"DATABASE_URL={shown!r} must name the database (postgres://user:password@host:port/name).")
        return sqlite
    pool_min = env_int("DATABASE_POOL_MIN_SIZE", 1, minimum=0)
    pool_max = env_int("DATABASE_POOL_MAX_SIZE", 10, minimum=1)
    if pool_min > pool_max:
        _problem(f"DATABASE_POOL_MIN_SIZE={pool_min} must not exceed DATABASE_POOL_MAX_SIZE={pool_max}.")
        pool_min = pool_max
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(url.username or ""),
        "PASSWORD": unquote(url.password or ""),
        "HOST": host,
        "PORT": str(port or ""),
        # Per worker process: each worker holds between min_size and max_size connections.
        "OPTIONS": {
            **{key: unquote(value) for key, value in query.items() if key != "host"},
            "pool": {
                "min_size": pool_min,
                "max_size": pool_max,
                "timeout": env_float("DATABASE_POOL_TIMEOUT", 10.0, minimum=0.1),
            },
        },
    }


def upstream_settings(names: list[str], *, default_url: str | None) -> dict[str, dict[str, str | None]]:
    """Raw settings of every upstream: the built-in `names` plus any `UPSTREAM_<NAME>_URL` in the environment.

    Values stay strings here; `upstreams.config.parse_upstreams` validates them. The variables' names are checked
    here (`upstreams.config.variable_problems`): an unknown `UPSTREAM_<NAME>_<KEY>`, or an upstream whose name is a
    typo of a built-in one, is a problem that suggests the closest known variable.
    `default_url` is a format string with `{name}` (the demo upstreams) or None (the URL must be set).
    """
    for message in variable_problems(os.environ, builtin=names, ignore=GLOBAL_UPSTREAM_VARIABLES):
        _problem(message)
    found = {
        key[len("UPSTREAM_") : -len("_URL")].lower()
        for key in os.environ
        if key.startswith("UPSTREAM_") and key.endswith("_URL") and len(key) > len("UPSTREAM__URL")
    }
    upstreams: dict[str, dict[str, str | None]] = {}
    for name in [*names, *sorted(found - set(names))]:
        prefix = f"UPSTREAM_{name.upper()}_"
        values: dict[str, str | None] = {key: os.environ.get(prefix + key) for key in UPSTREAM_KEYS}
        if values["URL"] is None and default_url is not None:
            values["URL"] = default_url.format(name=name)
        upstreams[name] = values
    return upstreams


def raise_problems(namespace: Mapping[str, Any]) -> None:
    """The last step of a settings module: every problem reading found, plus those the settings' values have
    (`upstreams.apps.settings_problems`: upstream settings, transport, deadline, Redis URL, demo faults), in one
    `ConfigurationProblems`. `namespace` is the settings module's `globals()`."""
    from upstreams.apps import settings_problems

    problems = list(_problems)
    for _, message in settings_problems(namespace):
        if message not in problems:
            problems.append(message)
    if problems:
        raise ConfigurationProblems(problems)
