"""A circuit breaker whose state lives in Redis, so every worker and host shares one view of an upstream's health.

Same rules as `breaker.CircuitBreaker` (see its docstring), kept in a few keys per upstream
(`tributary:breaker:<name>:...`):

    open          "<opened_at>" while the circuit is open or half-open; deleted when it closes
    probe         set with NX by the one process whose call is the half-open probe (expires with the call's budget)
    consecutive   consecutive faults (INCR on a fault, 0 on an answer)
    calls:<s>     calls and faults per one-second bucket, for the failure ratio over the window (they expire)
    fails:<s>

Each admitted call costs two round trips (one to admit, one to report), pipelined. If Redis cannot be reached the
breaker fails open: calls go out as if it were closed, and a warning is logged once per minute per upstream.
Clients are per event loop, like the HTTP clients (`aclose()` closes the running loop's).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from . import observe
from .breaker import BreakerState, BreakerStatus, is_fault
from .config import BreakerPolicy
from .errors import CircuitOpen, UpstreamError

__all__ = ["RedisCircuitBreaker", "RedisClients"]

logger = logging.getLogger("tributary.breaker")

BUCKET_SECONDS = 1


class RedisClients:
    """One Redis client per event loop for a URL (a connection pool belongs to its loop)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.Redis] = weakref.WeakKeyDictionary()

    def get(self) -> redis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = redis.Redis.from_url(
                self.url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
        return client

    async def aclose(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


class RedisCircuitBreaker:
    def __init__(self, name: str, policy: BreakerPolicy, *, clients: RedisClients, probe_ttl: float = 30.0) -> None:
        self.name = name
        self.policy = policy
        self.clients = clients
        self.probe_ttl = probe_ttl
        self.prefix = f"tributary:breaker:{name}:"
        self._warned_at = -1e9

    async def acquire(self) -> bool:
        if not self.policy.enabled:
            return False
        try:
            client = self.clients.get()
            opened = await client.get(self.prefix + "open")
            if opened is None:
                return False
            left = float(opened) + self.policy.cooldown - time.time()
            if left > 0:
                raise CircuitOpen(self.name, retry_after=left)
            acquired = await client.set(self.prefix + "probe", "1", nx=True, px=int(self.probe_ttl * 1000))
        except RedisError:
            self._warn()
            return False
        if not acquired:
            raise CircuitOpen(self.name, retry_after=min(1.0, self.policy.cooldown))
        observe.breaker_changed(self.name, BreakerState.HALF_OPEN.value)  # this process sends the probe
        return True

    async def report(self, error: UpstreamError | None, *, probe: bool) -> None:
        if not self.policy.enabled:
            return
        failed = error is not None and is_fault(error)
        try:
            if probe:
                await self._settle_probe(failed)
            else:
                await self._count(failed)
        except RedisError:
            self._warn()

    async def abandon(self, *, probe: bool) -> None:
        if probe:
            try:
                await self.clients.get().delete(self.prefix + "probe")
            except RedisError:
                self._warn()

    async def status(self) -> BreakerStatus:
        try:
            opened, consecutive = await self.clients.get().mget(self.prefix + "open", self.prefix + "consecutive")
        except RedisError:
            self._warn()
            return BreakerStatus(BreakerState.CLOSED, 0, None)
        failures = int(consecutive or 0)
        if opened is None:
            return BreakerStatus(BreakerState.CLOSED, failures, None)
        left = float(opened) + self.policy.cooldown - time.time()
        if left > 0:
            return BreakerStatus(BreakerState.OPEN, failures, round(left, 3))
        return BreakerStatus(BreakerState.HALF_OPEN, failures, None)

    async def _settle_probe(self, failed: bool) -> None:
        p = self.prefix
        async with self.clients.get().pipeline(transaction=True) as pipe:
            pipe.delete(p + "probe")
            if failed:
                pipe.set(p + "open", repr(time.time()))
            else:
                pipe.delete(p + "open", p + "consecutive", *self._bucket_keys())
            await pipe.execute()
        observe.breaker_changed(self.name, (BreakerState.OPEN if failed else BreakerState.CLOSED).value)

    async def _count(self, failed: bool) -> None:
        p = self.prefix
        bucket = int(time.time()) // BUCKET_SECONDS
        ttl = int(self.policy.window) + 2 * BUCKET_SECONDS
        async with self.clients.get().pipeline(transaction=True) as pipe:
            pipe.get(p + "open")
            if failed:
                pipe.incr(p + "consecutive")
                pipe.incr(f"{p}fails:{bucket}")
                pipe.expire(f"{p}fails:{bucket}", ttl)
            else:
                pipe.set(p + "consecutive", 0)
            pipe.incr(f"{p}calls:{bucket}")
            pipe.expire(f"{p}calls:{bucket}", ttl)
            results: list[Any] = await pipe.execute()
        if not failed or results[0] is not None:
            return  # an answer, or a straggler admitted before the circuit opened: the probe decides now
        opens = int(results[1]) >= self.policy.failures or await self._ratio_exceeded(bucket)
        # NX: when several processes see the threshold at once, the first opening time stands.
        if opens and await self.clients.get().set(p + "open", repr(time.time()), nx=True):
            observe.breaker_changed(self.name, BreakerState.OPEN.value)  # this process opened it

    async def _ratio_exceeded(self, bucket: int) -> bool:
        keys = self._bucket_keys(bucket)
        values = await self.clients.get().mget(keys)
        half = len(keys) // 2
        calls = sum(int(v or 0) for v in values[:half])
        fails = sum(int(v or 0) for v in values[half:])
        return calls >= self.policy.min_calls and fails / calls >= self.policy.failure_ratio

    def _bucket_keys(self, bucket: int | None = None) -> list[str]:
        """calls:<b> for every bucket in the window, then fails:<b> for the same buckets."""
        last = int(time.time()) // BUCKET_SECONDS if bucket is None else bucket
        buckets = range(last - int(self.policy.window) // BUCKET_SECONDS, last + 1)
        return [f"{self.prefix}calls:{b}" for b in buckets] + [f"{self.prefix}fails:{b}" for b in buckets]

    def _warn(self) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            logger.warning("Redis unreachable: the %s circuit breaker fails open (calls go out)", self.name)
