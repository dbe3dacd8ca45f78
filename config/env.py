"""Reading the environment: the only module that does. A bad value fails start-up with the variable's name."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from upstreams.config import KEYS as UPSTREAM_KEYS

__all__ = ["env", "env_bool", "env_float", "env_int", "env_list", "require", "upstream_settings"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def require(name: str) -> str:
    """A variable with no default (a secret in production): missing means the process does not start."""
    value = os.environ.get(name)
    if not value:
        raise ImproperlyConfigured(f"The environment variable {name} must be set.")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} must be one of true/false, 1/0, yes/no, on/off.")


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} must be a number.") from None
    if not value >= minimum or value == float("inf"):
        raise ImproperlyConfigured(f"{name}={raw!r} must be a finite number >= {minimum}.")
    return value


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} must be a whole number.") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name}={raw!r} must be between {minimum} and {maximum or 'any'}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def upstream_settings(names: list[str], *, default_url: str | None) -> dict[str, dict[str, str | None]]:
    """Raw settings of every upstream: the built-in `names` plus any `UPSTREAM_<NAME>_URL` in the environment.

    Values stay strings here; `upstreams.config.parse_upstreams` validates them (and `manage.py check` reports).
    `default_url` is a format string with `{name}` (the demo upstreams) or None (the URL must be set).
    """
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
