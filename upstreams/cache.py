"""The upstream response cache: HTTP caching semantics over Django's cache framework.

What is stored is the raw JSON body with its ETag and two deadlines (wall-clock seconds, so entries mean the same to
every process sharing a Redis cache):

    fresh_until   answer from the cache without calling the upstream
    keep_until    past freshness, still useful: revalidate with If-None-Match (304 -> fresh again), or answer a
                  failed call with it while within the stale-if-error window

Freshness comes from the upstream's `Cache-Control` when it has one (`s-maxage`/`max-age`; `no-store` and `private`
mean "do not store", `no-cache` means "store, but revalidate every time"), otherwise from the call's TTL or the
upstream's `CACHE_TTL`.

End-user headers (`FORWARD_HEADERS`): the client keys such a response by the forwarded values (so only requests that
forwarded identical values share it), and it is stored only if the upstream marked it for shared caches (`public`
or `s-maxage`). `Vary: *`, or a Vary on a header whose value changes per call and is not in the key (`X-Request-ID`),
is never stored; every other header we send is the same on every call to the upstream, or forwarded and keyed.

Local-memory caches are called synchronously (a dictionary look-up); any other backend through Django's async API.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import CachePolicy

__all__ = ["CacheEntry", "Freshness", "ResponseCache", "freshness", "shareable"]


@dataclass(frozen=True)
class CacheEntry:
    body: bytes
    etag: str | None
    stored_at: float
    fresh_until: float
    keep_until: float

    def is_fresh(self, now: float) -> bool:
        return now < self.fresh_until

    def age(self, now: float) -> float:
        return max(0.0, now - self.stored_at)

    def stale_usable(self, now: float, policy: CachePolicy) -> bool:
        """May this entry answer a failed call now (stale-if-error)?"""
        return now < self.fresh_until + policy.stale_if_error


def _directives(headers: Mapping[str, str]) -> dict[str, str | None]:
    directives: dict[str, str | None] = {}
    for part in headers.get("cache-control", "").split(","):
        name, _, value = part.strip().partition("=")
        if name:
            directives[name.lower()] = value.strip('"') or None
    return directives


MAX_DELTA_SECONDS = 2**31

# Request headers we send with a per-call value that is not part of the cache key.
_UNKEYED_PER_CALL = frozenset({"x-request-id"})


def shareable(headers: Mapping[str, str], *, forwarded: bool) -> bool:
    """May this response be stored at all? `forwarded`: the request carried end-user headers."""
    vary = headers.get("vary")
    if vary is not None:
        names = {name.strip().lower() for name in vary.split(",")}
        if "*" in names or names & _UNKEYED_PER_CALL:
            return False
    if forwarded:
        directives = _directives(headers)
        return "public" in directives or "s-maxage" in directives
    return True


def freshness(headers: Mapping[str, str], *, default_ttl: float) -> float | None:
    """Seconds the response stays fresh, or None when it must not be stored at all."""
    directives = _directives(headers)
    if "no-store" in directives or "private" in directives:
        return None
    if "no-cache" in directives:
        return 0.0
    for name in ("s-maxage", "max-age"):  # we are a shared cache: s-maxage wins
        value = directives.get(name)
        if value is not None and value.isascii() and value.isdigit():
            # RFC 9111 1.2.2: a larger delta-seconds means 2^31 (and any more would overflow a Redis expiry).
            return float(MAX_DELTA_SECONDS if len(value) > 10 else min(int(value), MAX_DELTA_SECONDS))
    return default_ttl


@dataclass(frozen=True)
class Freshness:
    """How long a payload may be reused by whoever we pass it on to: the upstream's own `Cache-Control` (or our TTL
    for it), and whether it is for one user only (`private`) or must not be stored at all (`no_store`)."""

    max_age: float
    private: bool = False
    no_store: bool = False

    @classmethod
    def of_response(cls, headers: Mapping[str, str], *, default_ttl: float, private: bool = False) -> Freshness:
        """From a response's headers; `private`: the request carried end-user headers (forwarded)."""
        directives = _directives(headers)
        if "no-store" in directives:
            return cls(0.0, private=private, no_store=True)
        private = private or "private" in directives
        if "no-cache" in directives:
            return cls(0.0, private=private)
        ages = [
            float(min(int(value), MAX_DELTA_SECONDS))
            for name in ("s-maxage", "max-age")
            if (value := directives.get(name)) is not None and value.isascii() and value.isdigit() and len(value) <= 10
        ]
        return cls(min(ages) if ages else max(0.0, default_ttl), private=private)

    @classmethod
    def strictest(cls, parts: list[Freshness]) -> Freshness:
        """The freshness of something made of `parts`: the smallest max-age; private or no-store if any part is."""
        if not parts:
            return cls(0.0)
        return cls(
            min(part.max_age for part in parts),
            private=any(part.private for part in parts),
            no_store=any(part.no_store for part in parts),
        )

    def header(self) -> str:
        """As a `Cache-Control` value."""
        if self.no_store:
            return "no-store"
        max_age = f"max-age={int(self.max_age)}"
        return f"private, {max_age}" if self.private else max_age


# Upstreams that have had a response stored in a local-memory cache of this process (which is where such a cache
# lives): until then a look-up can only miss. A shared (Redis) cache is always asked: another process may store.
_STORED_LOCALLY: set[tuple[str, str]] = set()


class ResponseCache:
    """One upstream's view of the shared cache (keys are namespaced by upstream name)."""

    def __init__(self, name: str, policy: CachePolicy, *, alias: str = "default") -> None:
        self.name = name
        self.policy = policy
        self.alias = alias
        self._cached_backend: tuple[Any, bool] | None = None

    def key(self, url: str) -> str:
        return f"tributary:upstream:{self.name}:{hashlib.sha256(url.encode()).hexdigest()[:40]}"

    async def get(self, url: str) -> CacheEntry | None:
        cache, is_local = self._backend()
        if is_local and (self.alias, self.name) not in _STORED_LOCALLY:
            return None  # nothing of this upstream was ever cacheable: skip the look-up (and its key hashing)
        value: Any = cache.get(self.key(url)) if is_local else await cache.aget(self.key(url))
        return value if isinstance(value, CacheEntry) else None

    async def store(
        self, url: str, body: bytes, headers: Mapping[str, str], *, ttl: float | None, forwarded: bool = False
    ) -> float | None:
        """Store a 200 response as HTTP caching allows; returns its freshness in seconds (None: not stored).
        `url` is the cache key (the client adds the forwarded headers' digest); `forwarded`: see `shareable`."""
        if not shareable(headers, forwarded=forwarded):
            return None
        fresh_for = freshness(headers, default_ttl=self.policy.ttl if ttl is None else ttl)
        if fresh_for is None:
            return None
        etag = headers.get("etag")
        if etag is not None and not (etag.isascii() and etag.isprintable()):
            etag = None  # it goes back to the upstream as If-None-Match: a header value must be visible ASCII
        keep_for = fresh_for + self.policy.stale_if_error
        if keep_for <= 0 and etag is None:
            return None  # never fresh, never a fallback, nothing to revalidate with: not worth storing
        if etag is not None:
            keep_for = max(keep_for, fresh_for + 3600.0)  # an ETag makes even a stale copy a cheap 304 away
        now = time.time()
        entry = CacheEntry(body=body, etag=etag, stored_at=now, fresh_until=now + fresh_for, keep_until=now + keep_for)
        cache, is_local = self._backend()
        _STORED_LOCALLY.add((self.alias, self.name))
        if is_local:
            cache.set(self.key(url), entry, timeout=keep_for)
        else:
            await cache.aset(self.key(url), entry, timeout=keep_for)
        return fresh_for

    async def refresh(
        self, url: str, entry: CacheEntry, headers: Mapping[str, str], *, ttl: float | None, forwarded: bool = False
    ) -> None:
        """A 304 confirmed `entry`: store it again with the new response's freshness."""
        merged = {"etag": entry.etag or "", **{k.lower(): v for k, v in headers.items()}}
        await self.store(url, entry.body, merged, ttl=ttl, forwarded=forwarded)

    def _backend(self) -> tuple[Any, bool]:
        # Looked up once: `caches[alias]` goes through an asgiref Local on every access, which costs more than
        # the local-memory lookup itself. A LocMemCache shares its storage by name; Django's Redis cache pools
        # its connections; so one instance serves every request.
        if self._cached_backend is None:
            from django.core.cache import caches
            from django.core.cache.backends.locmem import LocMemCache

            cache = caches[self.alias]
            self._cached_backend = (cache, isinstance(cache, LocMemCache))
        return self._cached_backend
