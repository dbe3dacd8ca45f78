"""The upstreams this service is built with, declared once: the one place to add an upstream.

Everything that needs the list reads it from here: the settings (config/settings/base.py: which upstreams exist by
default, their default settings, the demo URL), `manage.py check` (a required upstream without a URL, a name one typo
from a declared one), `/api/upstreams/`, the demo app (which services it simulates) and the tests.

    Upstream("weather", demo=False, defaults={"CACHE_TTL": "300"})

`required`: the built-in aggregates call it, so it always exists (production must set its URL). `demo`: upstreams/demo
simulates it, under `/demo/<name>`, and local settings point it there. `defaults`: settings under the names of its
`UPSTREAM_<NAME>_<KEY>` variables (`KEY` from `upstreams.config.KEYS`), used when the variable is unset.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["DECLARED", "Upstream", "apply_defaults", "demo_names", "names", "required_names"]


@dataclass(frozen=True)
class Upstream:
    name: str
    required: bool = True
    demo: bool = True
    defaults: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


DECLARED: tuple[Upstream, ...] = (
    Upstream("slow"),
    Upstream("catalog"),
    Upstream("inventory"),
    Upstream("reviews"),
    Upstream("fx"),
)


def names() -> tuple[str, ...]:
    """Every declared upstream, in declaration order."""
    return tuple(upstream.name for upstream in DECLARED)


def required_names() -> tuple[str, ...]:
    return tuple(upstream.name for upstream in DECLARED if upstream.required)


def demo_names() -> tuple[str, ...]:
    return tuple(upstream.name for upstream in DECLARED if upstream.demo)


def apply_defaults(upstreams: Mapping[str, MutableMapping[str, Any]], *, demo_url: str | None = None) -> None:
    """Fill each declared upstream's unset settings (None or absent) from its `defaults`, in place; with `demo_url`
    (a format string with `{name}`), an upstream the demo simulates defaults to its demo URL."""
    for upstream in DECLARED:
        values = upstreams.get(upstream.name)
        if values is None:
            continue
        defaults = dict(upstream.defaults)
        if demo_url is not None and upstream.demo:
            defaults["URL"] = demo_url.format(name=upstream.name)
        for key, value in defaults.items():
            if values.get(key) is None:
                values[key] = value
