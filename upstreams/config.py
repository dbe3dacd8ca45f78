"""Upstream configuration as data: one frozen `UpstreamConfig` per named upstream, with small policy value objects
for retries, the circuit breaker, the bulkhead and the cache.

Settings hand us raw values (strings from the environment, or Python values in tests) under the names of the
environment variables a person would set (`URL`, `TIMEOUT`, `RETRIES`, ...: see `KEYS`). `parse_upstreams()` turns
them into validated value objects or raises one `ConfigError` listing every problem, each naming the variable to fix;
`manage.py check` reports those as errors. `variable_problems()` checks the variables' names: an unknown
`UPSTREAM_<NAME>_<KEY>` is reported with the closest known variable, and so is an upstream whose name is one typo
away from a built-in one.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "KEYS",
    "BreakerPolicy",
    "BulkheadPolicy",
    "CachePolicy",
    "ConfigError",
    "RetryPolicy",
    "UpstreamConfig",
    "env_prefix",
    "parse_upstreams",
    "variable_problems",
]

# Every setting an upstream takes, as the suffix of its environment variable (UPSTREAM_<NAME>_<KEY>).
KEYS = (
    "URL",
    "TIMEOUT",
    "CONNECT_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_BODY_BYTES",
    "TOKEN",
    "HEADERS",
    "RETRIES",
    "RETRY_BACKOFF",
    "RETRY_BACKOFF_MAX",
    "RETRY_AFTER_MAX",
    "BREAKER_FAILURES",
    "BREAKER_FAILURE_RATIO",
    "BREAKER_MIN_CALLS",
    "BREAKER_WINDOW",
    "BREAKER_COOLDOWN",
    "MAX_CONCURRENCY",
    "QUEUE_TIMEOUT",
    "CACHE_TTL",
    "STALE_IF_ERROR",
    "COALESCE",
    "FORWARD_HEADERS",
)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
# Never forwarded from the end user: hop-by-hop and framing headers, and our own API key.
_NEVER_FORWARDED = frozenset(
    {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length", "x-api-key"}
)
# Set by the client on every call: forwarding them would replace ours (or break decoding: Accept-Encoding).
_OWN_HEADERS = frozenset({"user-agent", "accept", "accept-encoding", "x-request-id"})

DEFAULT_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 2.0
# Per upstream per worker. Large enough not to be the bottleneck: one aggregate of three calls per upstream at 256
# concurrent requests needs 768 calls in flight, and a pool of 100 capped a worker at 64 connections (issue 12:
# 862 -> 622 req/s). The bulkhead (MAX_CONCURRENCY, this by default) still bounds the calls in flight, and failing
# fast after QUEUE_TIMEOUT is what protects the upstream; the process's open-files limit is raised to fit at start-up
# (config/startup.py).
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024


class ConfigError(ValueError):
    """The upstream configuration is invalid; `problems` lists every message."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Retries of idempotent calls: `retries` extra attempts, exponential backoff with full jitter."""

    retries: int = 2
    backoff: float = 0.05  # seconds: the first backoff's upper bound; doubles per attempt
    backoff_max: float = 1.0
    retry_after_max: float = 5.0  # an upstream's Retry-After is honoured up to this many seconds


@dataclass(frozen=True, kw_only=True)
class BreakerPolicy:
    """Opens after `failures` consecutive faults, or when `failure_ratio` of at least `min_calls` calls in the last
    `window` seconds were faults; stays open `cooldown` seconds, then lets one probe through. `failures=0` disables."""

    failures: int = 5
    failure_ratio: float = 0.5
    min_calls: int = 20
    window: float = 30.0
    cooldown: float = 10.0

    @property
    def enabled(self) -> bool:
        return self.failures > 0


@dataclass(frozen=True, kw_only=True)
class BulkheadPolicy:
    """At most `max_concurrency` calls in flight per worker; a call waits at most `queue_timeout` for a slot."""

    max_concurrency: int = DEFAULT_MAX_CONNECTIONS  # the pool's size unless configured
    queue_timeout: float = 0.5


@dataclass(frozen=True, kw_only=True)
class CachePolicy:
    """`ttl`: seconds to keep a response when the upstream's Cache-Control does not say (0: only what it says).
    `stale_if_error`: for how long past freshness a failed call may be answered from the last good response."""

    ttl: float = 0.0
    stale_if_error: float = 0.0


@dataclass(frozen=True, kw_only=True)
class UpstreamConfig:
    """Everything needed to call one upstream. `timeout` is the whole call's budget, connect included."""

    name: str
    base_url: str
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    coalesce: bool = True  # identical concurrent GETs share one upstream request
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    bulkhead: BulkheadPolicy = BulkheadPolicy()
    cache: CachePolicy = CachePolicy()
    # Secrets: kept out of repr() so they never reach a log line or a traceback.
    token: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    # End-user request headers passed on to this upstream (names as configured); none by default.
    forward_headers: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        """Host and port only: safe to publish (no credentials, path or query)."""
        parts = urlsplit(self.base_url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)

    def request_headers(self) -> dict[str, str]:
        """Headers sent on every call: configured ones plus the bearer token."""
        headers = dict(self.headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


def env_prefix(name: str) -> str:
    """`catalog` -> `UPSTREAM_CATALOG_`: the environment variables that configure an upstream."""
    return f"UPSTREAM_{name.upper()}_"


def variable_problems(variables: Iterable[str], *, builtin: Collection[str], ignore: Collection[str] = ()) -> list[str]:
    """Problems in the names of `UPSTREAM_*` variables (their values are `parse_upstreams()`'s business).

    An upstream exists if it is built in (the built-in aggregates use it) or has an `UPSTREAM_<NAME>_URL`; `ignore`
    lists variables that start with `UPSTREAM_` but configure no single upstream (`UPSTREAM_TRANSPORT`).
    - `UPSTREAM_<NAME>_<KEY>` with a KEY not in `KEYS`, or for an upstream that does not exist, is reported with the
      closest known variable (difflib): a misspelt setting would otherwise be ignored without a word.
    - An upstream defined only by its URL whose name is one typo from a built-in one (edit distance 1, or 2 for
      names of six letters or more) is reported too: no aggregate uses it, and the built-in upstream it was meant
      for keeps its default. Any other new name is a legitimate new upstream.
    """
    variables = sorted({v for v in variables if v.startswith("UPSTREAM_") and v not in ignore})
    defined = {
        v[len("UPSTREAM_") : -len("_URL")].lower()
        for v in variables
        if v.endswith("_URL") and len(v) > len("UPSTREAM__URL")
    }
    builtin = set(builtin)
    existing = builtin | defined
    problems = []
    for name in sorted(defined - builtin):
        meant = _one_typo_from(name, builtin)
        if meant is not None:
            problems.append(
                f"{env_prefix(name)}URL defines an upstream {name!r} that no built-in aggregate uses: "
                f"did you mean {env_prefix(meant)}URL? (a new upstream's name must not be one typo from a "
                f"built-in one)"
            )
    known = {f"{env_prefix(name)}{key}" for name in existing for key in KEYS}
    for variable in variables:
        if variable in known or variable.endswith("_URL"):
            continue
        suggestion = _closest_variable(variable, existing, known | set(ignore))
        if suggestion is None:
            problems.append(
                f"{variable} is not a setting: an upstream takes UPSTREAM_<NAME>_<KEY>, KEY one of "
                f"{', '.join(KEYS)}, and is defined by its UPSTREAM_<NAME>_URL"
            )
        else:
            problems.append(f"{variable} is not a setting: did you mean {suggestion}?")
    return problems


def _closest_variable(variable: str, names: Collection[str], known: Collection[str]) -> str | None:
    """The upstream whose prefix the variable starts with decides, if any (longest first); else the whole name."""
    for name in sorted(names, key=len, reverse=True):
        prefix = env_prefix(name)
        if variable.startswith(prefix):
            keys = difflib.get_close_matches(variable[len(prefix) :], KEYS, n=1, cutoff=0.6)
            if keys:
                return prefix + keys[0]
    matches = difflib.get_close_matches(variable, sorted(known), n=1, cutoff=0.8)
    return matches[0] if matches else None


def _one_typo_from(name: str, candidates: Collection[str]) -> str | None:
    for candidate in sorted(candidates):
        if _edit_distance(name, candidate) <= (1 if len(candidate) < 6 else 2):
            return candidate
    return None


def _edit_distance(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and adjacent transpositions (optimal string alignment)."""
    rows = [list(range(len(b) + 1))]
    for i, char_a in enumerate(a, 1):
        row = [i]
        for j, char_b in enumerate(b, 1):
            cost = 0 if char_a == char_b else 1
            row.append(min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost))
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def parse_upstreams(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, UpstreamConfig]:
    """Validate every upstream's raw settings; raise `ConfigError` naming each bad variable."""
    problems: list[str] = []
    configs: dict[str, UpstreamConfig] = {}
    for name, values in raw.items():
        parser = _Parser(name, values, problems)
        if not _NAME.match(name):
            problems.append(f"upstream name {name!r} must be lower-case letters, digits and underscores")
            continue
        timeout = parser.number("TIMEOUT", DEFAULT_TIMEOUT)
        max_connections = parser.integer("MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)
        config = UpstreamConfig(
            name=name,
            base_url=parser.url("URL"),
            timeout=timeout,
            # Unset, it follows a short TIMEOUT down; set explicitly above TIMEOUT, it is an error (below).
            connect_timeout=parser.number("CONNECT_TIMEOUT", min(DEFAULT_CONNECT_TIMEOUT, timeout)),
            max_connections=max_connections,
            max_body_bytes=parser.integer("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            coalesce=parser.flag("COALESCE", True),
            retry=RetryPolicy(
                retries=parser.integer("RETRIES", RetryPolicy.retries, zero=True),
                backoff=parser.number("RETRY_BACKOFF", RetryPolicy.backoff, zero=True),
                backoff_max=parser.number("RETRY_BACKOFF_MAX", RetryPolicy.backoff_max, zero=True),
                retry_after_max=parser.number("RETRY_AFTER_MAX", RetryPolicy.retry_after_max, zero=True),
            ),
            breaker=BreakerPolicy(
                failures=parser.integer("BREAKER_FAILURES", BreakerPolicy.failures, zero=True),
                failure_ratio=parser.number("BREAKER_FAILURE_RATIO", BreakerPolicy.failure_ratio, maximum=1.0),
                min_calls=parser.integer("BREAKER_MIN_CALLS", BreakerPolicy.min_calls),
                window=parser.number("BREAKER_WINDOW", BreakerPolicy.window),
                cooldown=parser.number("BREAKER_COOLDOWN", BreakerPolicy.cooldown),
            ),
            bulkhead=BulkheadPolicy(
                max_concurrency=parser.integer("MAX_CONCURRENCY", max_connections),
                queue_timeout=parser.number("QUEUE_TIMEOUT", BulkheadPolicy.queue_timeout, zero=True),
            ),
            cache=CachePolicy(
                ttl=parser.number("CACHE_TTL", CachePolicy.ttl, zero=True),
                stale_if_error=parser.number("STALE_IF_ERROR", CachePolicy.stale_if_error, zero=True),
            ),
            token=parser.optional_str("TOKEN"),
            headers=MappingProxyType(parser.headers("HEADERS")),
            forward_headers=parser.forward_headers("FORWARD_HEADERS"),
        )
        set_by_us = _OWN_HEADERS | {header.lower() for header in config.request_headers()}
        for header in config.forward_headers:
            if header.lower() in set_by_us:
                problems.append(
                    f"{env_prefix(name)}FORWARD_HEADERS: {header} is already set on every call (TOKEN, HEADERS or "
                    "the client's own): it is not forwarded"
                )
        if config.connect_timeout > config.timeout:
            problems.append(
                f"{env_prefix(name)}CONNECT_TIMEOUT ({config.connect_timeout}) must not exceed "
                f"{env_prefix(name)}TIMEOUT ({config.timeout})"
            )
        configs[name] = config
    if problems:
        raise ConfigError(problems)
    return configs


class _Parser:
    """Reads one upstream's raw values, appending a message per problem instead of stopping at the first."""

    def __init__(self, name: str, values: Mapping[str, Any], problems: list[str]) -> None:
        self.prefix = env_prefix(name)
        self.values = values
        self.problems = problems

    def _get(self, key: str) -> Any:
        value = self.values.get(key)
        return None if value is None or value == "" else value

    def url(self, key: str) -> str:
        value = self._get(key)
        if value is None:
            self.problems.append(f"{self.prefix}{key} is required")
            return ""
        text = str(value).strip()
        parts = urlsplit(text)
        try:
            parts.port  # noqa: B018 - parsing the port is what validates it
        except ValueError:
            self.problems.append(f"{self.prefix}{key}={text!r} has an invalid port")
            return text
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problems.append(f"{self.prefix}{key}={text!r} must be an absolute http:// or https:// URL")
        elif parts.query or parts.fragment:
            self.problems.append(f"{self.prefix}{key}={text!r} must not have a query string or fragment")
        return text.rstrip("/")

    def number(
        self, key: str, default: float, *, zero: bool = False, maximum: float | None = None, integer: bool = False
    ) -> float:
        value = self._get(key)
        if value is None:
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        too_small = number < 0 if zero else number <= 0
        if (
            not math.isfinite(number)
            or too_small
            or (maximum is not None and number > maximum)
            or (integer and not number.is_integer())
        ):
            kind = "whole number" if integer else "number"
            low = "0 or more" if zero else "greater than 0"
            high = f" and at most {maximum:g}" if maximum is not None else ""
            self.problems.append(f"{self.prefix}{key}={value!r} must be a {kind} {low}{high}")
            return default
        return number

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{self.prefix}{key}={value!r} must be true or false")
        return default

    def integer(self, key: str, default: int, *, zero: bool = False) -> int:
        return int(self.number(key, default, zero=zero, integer=True))

    def optional_str(self, key: str) -> str | None:
        value = self._get(key)
        return None if value is None else str(value)

    def headers(self, key: str) -> dict[str, str]:
        """`HEADERS` is `Name: value` pairs separated by newlines or `;`, or already a mapping."""
        value = self._get(key)
        if value is None:
            return {}
        if isinstance(value, Mapping):
            pairs = [(str(k), str(v)) for k, v in value.items()]
        else:
            pairs = []
            for item in re.split(r"[;\n]", str(value)):
                if not item.strip():
                    continue
                header, sep, header_value = item.partition(":")
                if not sep:
                    self.problems.append(f"{self.prefix}{key}: {item.strip()!r} is not 'Name: value'")
                    continue
                pairs.append((header.strip(), header_value.strip()))
        headers: dict[str, str] = {}
        for header, header_value in pairs:
            if not _HEADER_NAME.match(header) or "\r" in header_value or "\n" in header_value:
                self.problems.append(f"{self.prefix}{key}: {header!r} is not a valid header")
            else:
                headers[header] = header_value
        return headers

    def forward_headers(self, key: str) -> tuple[str, ...]:
        """`FORWARD_HEADERS` is a comma-separated list of header names (or already a list)."""
        value = self._get(key)
        if value is None:
            return ()
        items = [str(item) for item in value] if isinstance(value, list | tuple) else str(value).split(",")
        names: dict[str, str] = {}
        for item in items:
            header = item.strip()
            if not header:
                continue
            lowered = header.lower()
            if not _HEADER_NAME.match(header):
                self.problems.append(f"{self.prefix}{key}: {header!r} is not a valid header name")
            elif lowered in _NEVER_FORWARDED or lowered.startswith("proxy-"):
                self.problems.append(f"{self.prefix}{key}: {header} is never forwarded (hop-by-hop or the API key)")
            else:
                names.setdefault(lowered, header)
        return tuple(names.values())
