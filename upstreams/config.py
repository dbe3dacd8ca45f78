"""Upstream configuration as data: one frozen `UpstreamConfig` per named upstream.

Settings hand us raw values (strings from the environment, or Python values in tests) under the names of the
environment variables a person would set: `URL`, `TIMEOUT`, `CONNECT_TIMEOUT`, `MAX_CONNECTIONS`, `MAX_BODY_BYTES`,
`TOKEN`, `HEADERS`. `parse_upstreams()` turns them into validated value objects or raises one `ConfigError` listing
every problem, each naming the variable to fix; `manage.py check` reports those as errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ConfigError", "UpstreamConfig", "env_prefix", "parse_upstreams"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

DEFAULT_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024


class ConfigError(ValueError):
    """The upstream configuration is invalid; `problems` lists every message."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, kw_only=True)
class UpstreamConfig:
    """Everything needed to call one upstream. `timeout` is the whole call's budget, connect included."""

    name: str
    base_url: str
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Secrets: kept out of repr() so they never reach a log line or a traceback.
    token: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)

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
        config = UpstreamConfig(
            name=name,
            base_url=parser.url("URL"),
            timeout=timeout,
            # Unset, it follows a short TIMEOUT down; set explicitly above TIMEOUT, it is an error (below).
            connect_timeout=parser.number("CONNECT_TIMEOUT", min(DEFAULT_CONNECT_TIMEOUT, timeout)),
            max_connections=int(parser.number("MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, integer=True)),
            max_body_bytes=int(parser.number("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, integer=True)),
            token=parser.optional_str("TOKEN"),
            headers=MappingProxyType(parser.headers("HEADERS")),
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

    def number(self, key: str, default: float, *, integer: bool = False) -> float:
        value = self._get(key)
        if value is None:
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number <= 0 or (integer and not number.is_integer()):
            kind = "a positive whole number" if integer else "a positive number of seconds"
            self.problems.append(f"{self.prefix}{key}={value!r} must be {kind}")
            return default
        return number

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
