"""The registry of configured upstreams and their clients: one pooled client per upstream per event loop.

A client's connection pool belongs to the event loop it was created on, so clients are created lazily on first use
in a loop and reused by every request served on that loop. `aclose()` closes the current loop's clients: the ASGI
lifespan shutdown (config/asgi.py) calls it, and so does the test suite between tests.

The process-wide registry is built from Django settings on first use (`get_registry()`); tests and embedders can
install their own with `set_registry()`. With a Redis URL, circuit breakers keep their state in Redis, shared by
every process; without, in the process.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Mapping

from .breaker import Breaker, BreakerStatus, CircuitBreaker
from .cache import ResponseCache
from .client import TransportFactory, UpstreamClient, aiohttp_transport, httpx_transport
from .config import UpstreamConfig, parse_upstreams

__all__ = ["TRANSPORTS", "UnknownUpstream", "UpstreamRegistry", "close_registry", "get_registry", "set_registry"]

TRANSPORTS: Mapping[str, TransportFactory] = {"aiohttp": aiohttp_transport, "httpx": httpx_transport}


class UnknownUpstream(LookupError):
    """Code asked for an upstream that is not configured (a programming or configuration error, not a 5xx)."""


class UpstreamRegistry:
    def __init__(
        self,
        configs: Mapping[str, UpstreamConfig],
        *,
        transport_factory: TransportFactory = aiohttp_transport,
        redis_url: str | None = None,
    ) -> None:
        self.configs = dict(configs)
        self.transport_factory = transport_factory
        # Process-wide (or, with Redis, shared by every process): what one request learns about an upstream's
        # health, the next one uses.
        self.breakers: dict[str, Breaker] = {}
        self._redis = None
        if redis_url:
            from .redis_breaker import RedisCircuitBreaker, RedisClients

            self._redis = RedisClients(redis_url)
            for name, config in self.configs.items():
                self.breakers[name] = RedisCircuitBreaker(
                    name, config.breaker, clients=self._redis, probe_ttl=config.timeout + 1
                )
        else:
            self.breakers = {name: CircuitBreaker(name, config.breaker) for name, config in self.configs.items()}
        self.caches = {name: ResponseCache(name, config.cache) for name, config in self.configs.items()}
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, UpstreamClient]] = (
            weakref.WeakKeyDictionary()
        )

    def client(self, name: str) -> UpstreamClient:
        """The client for `name` on the running event loop, created on first use."""
        loop = asyncio.get_running_loop()
        clients = self._clients.get(loop)
        if clients is None:
            clients = self._clients[loop] = {}
        client = clients.get(name)
        if client is None or client.is_closed:
            try:
                config = self.configs[name]
            except KeyError:
                raise UnknownUpstream(f"no upstream named {name!r} is configured") from None
            client = clients[name] = UpstreamClient(
                config,
                transport=self.transport_factory(config),
                breaker=self.breakers[name],
                cache=self.caches[name],
            )
        return client

    def open_clients(self) -> int:
        """How many clients are open on the running loop (for tests and diagnostics)."""
        clients = self._clients.get(asyncio.get_running_loop(), {})
        return sum(not client.is_closed for client in clients.values())

    async def circuits(self) -> dict[str, BreakerStatus]:
        """Every upstream's circuit breaker status."""
        statuses = await asyncio.gather(*(breaker.status() for breaker in self.breakers.values()))
        return dict(zip(self.breakers, statuses, strict=True))

    async def aclose(self) -> None:
        """Close every client of the running loop; the next call creates fresh ones."""
        clients = self._clients.pop(asyncio.get_running_loop(), {})
        await asyncio.gather(*(client.aclose() for client in clients.values()))
        if self._redis is not None:
            await self._redis.aclose()


_registry: UpstreamRegistry | None = None
_lock = threading.Lock()


def get_registry() -> UpstreamRegistry:
    """The process-wide registry, built from `settings.UPSTREAMS` and `settings.UPSTREAM_TRANSPORT` on first use."""
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                _registry = _registry_from_settings()
    return _registry


def set_registry(registry: UpstreamRegistry | None) -> None:
    """Install a registry (None: rebuild from settings on next use). The caller closes the old one's clients."""
    global _registry
    _registry = registry


async def close_registry() -> None:
    """Close the process-wide registry's clients on the running loop, if a registry was ever built."""
    if _registry is not None:
        await _registry.aclose()


def _registry_from_settings() -> UpstreamRegistry:
    from django.conf import settings

    transport = getattr(settings, "UPSTREAM_TRANSPORT", "aiohttp")
    if transport not in TRANSPORTS:
        raise ValueError(f"UPSTREAM_TRANSPORT={transport!r} must be one of {sorted(TRANSPORTS)}")
    return UpstreamRegistry(
        parse_upstreams(settings.UPSTREAMS),
        transport_factory=TRANSPORTS[transport],
        redis_url=getattr(settings, "REDIS_URL", None),
    )
