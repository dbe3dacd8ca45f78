"""Per-client rate limits: a GCRA limiter, per worker or shared through Redis, and the DRF throttle that applies it.

Each caller has a budget of `limit` requests per `period` seconds: an authenticated client the deployment's
`RATE_LIMIT` (or its own `Caller.rate_limit`), an anonymous caller `RATE_LIMIT_ANONYMOUS` per client IP (an IPv6
address counts as its /64). 0 means no limit. The algorithm is GCRA (the generic cell rate algorithm): one number per
key, the theoretical arrival time of the next request; a caller with nothing used may send `limit` requests at once,
then one every `period / limit` seconds. Exact in integer microseconds: `limit` requests in a burst are admitted and
not one more.

    ClientRateThrottle.allow_request     (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]; awaited on the loop)
      -> limiter().hit(key, policy)      one limiter per process, built from the settings
           RedisLimiter                  REDIS_URL set: one EVALSHA per request (GCRA_SCRIPT, atomic, on Redis's clock)
             -> MemoryLimiter            on any Redis error, for a second at a time; a warning once a minute
           MemoryLimiter                 per worker: bounded, idle keys dropped first
      -> Decision                        RateLimit / RateLimit-Policy headers on the response; refused: RateLimited

Over the limit is a 429 problem document (`rate_limited`) with `Retry-After` (whole seconds, rounded up). Every
response of a limited operation after the check carries the IETF draft's fields
(draft-ietf-httpapi-ratelimit-headers-11): `RateLimit-Policy: "default";q=600;w=60` and `RateLimit:
"default";r=599;t=1` (r: requests left; t: seconds within which no more than r are admitted, i.e. until the next
one is earned back). `document_rate_limits` (a drf-spectacular postprocessing hook) publishes both, and the 429, on
every operation this throttle guards. With several workers and no Redis each worker keeps its own budget (a client
gets up to `workers x limit`); with Redis the budget is one across every worker and host.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from upstreams import REQUEST_ID_HEADER

from .identity import Caller

if TYPE_CHECKING:  # redis is imported by RedisLimiter, with REDIS_URL: a worker without it never loads it
    import redis.asyncio as redis
    from redis.commands.core import AsyncScript

__all__ = [
    "ClientRateThrottle",
    "Decision",
    "MemoryLimiter",
    "Policy",
    "RateLimited",
    "RedisLimiter",
    "aclose",
    "document_rate_limits",
    "limiter",
    "reset",
]

logger = logging.getLogger("tributary.ratelimit")

MICROS = 1_000_000
KEY_PREFIX = "tributary:ratelimit:"
DEFAULT_MAX_KEYS = 50_000
# After a Redis error the per-worker limiter answers alone for this long before Redis is tried again, so an outage
# costs one failed attempt per second per worker, not one per request.
REDIS_RETRY_SECONDS = 1.0
WARN_EVERY_SECONDS = 60.0
REDIS_TIMEOUT_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Policy:
    """`limit` requests per `period` seconds, under a name the RateLimit fields carry."""

    name: str
    limit: int
    period: int
    interval: int = field(init=False)  # emission interval T, microseconds
    tolerance: int = field(init=False)  # burst tolerance, (limit - 1) * T
    header: str = field(init=False)  # RateLimit-Policy

    def __post_init__(self) -> None:
        if not 0 < self.limit <= self.period * MICROS:
            raise ValueError(f"a rate limit must be between 1 and {self.period * MICROS} per {self.period} s")
        interval = self.period * MICROS // self.limit
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "tolerance", (self.limit - 1) * interval)
        object.__setattr__(self, "header", f'"{self.name}";q={self.limit};w={self.period}')

    def admitted(self, backlog: int) -> Decision:
        """The decision for an admitted request; `backlog`: the new TAT minus now (microseconds)."""
        slack = self.tolerance - backlog  # >= -interval for an admitted request
        remaining = max(0, slack // self.interval + 1)
        next_in = self.interval - slack % self.interval  # until `remaining` grows by one
        return Decision(self, allowed=True, remaining=remaining, reset=_seconds(next_in), retry_after=None)

    def refused(self, wait: int) -> Decision:
        """The decision for a refused request; `wait`: microseconds until one would be admitted."""
        return Decision(self, allowed=False, remaining=0, reset=_seconds(wait), retry_after=wait / MICROS)


def _seconds(micros: int) -> int:
    return max(1, -(-micros // MICROS))  # whole seconds, rounded up


@dataclass(frozen=True, slots=True)
class Decision:
    policy: Policy
    allowed: bool
    remaining: int
    reset: int  # the draft's `t`, whole seconds
    retry_after: float | None  # refused: seconds until a request would be admitted

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": self.policy.header,
            "RateLimit": f'"{self.policy.name}";r={self.remaining};t={self.reset}',
        }


class Limiter(Protocol):
    async def hit(self, key: str, policy: Policy) -> Decision: ...


class MemoryLimiter:
    """GCRA in this worker's memory, on the monotonic clock.

    Bounded: at most `max_keys` keys. When full, keys whose TAT has passed (idle: they hold nothing a new key would
    not) are dropped; if that frees less than a tenth, the least recently used keys go too (forgiving their debt), so
    a flood of new callers costs amortised O(1) per request and a fixed amount of memory.
    """

    def __init__(self, *, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._tats: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tats)

    async def hit(self, key: str, policy: Policy) -> Decision:
        return self.hit_now(key, policy)

    def hit_now(self, key: str, policy: Policy) -> Decision:
        now = _monotonic_us()
        tats = self._tats
        tat = tats.get(key)
        if tat is None or tat < now:
            tat = now
        allow_at = tat - policy.tolerance
        if now < allow_at:
            return policy.refused(allow_at - now)
        if key in tats:
            tats.move_to_end(key)
        elif len(tats) >= self.max_keys:
            self._make_room(now)
        tats[key] = tat + policy.interval
        return policy.admitted(tat + policy.interval - now)

    def _make_room(self, now: int) -> None:
        tats = self._tats
        for key in [key for key, tat in tats.items() if tat <= now]:
            del tats[key]
        target = self.max_keys - max(1, self.max_keys // 10)
        while len(tats) > target:
            tats.popitem(last=False)


def _monotonic_us() -> int:
    return time.monotonic_ns() // 1000


# GCRA for one key, atomically, on the Redis server's clock (so the hosts' clocks do not matter). Every quantity is
# whole microseconds. KEYS[1] holds the theoretical arrival time (TAT) of the next request while it is in the future
# (the key expires when it passes); ARGV[1] is the emission interval T, ARGV[2] the burst tolerance (limit - 1) * T.
# Returns {1, new TAT - now} when admitted, {0, microseconds until a request would be} when refused. Redis 5 or later
# (TIME before a write needs effects replication, the default since 5).
GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, new_tat - now}
"""


class RedisLimiter:
    """GCRA in Redis: one budget per key across every worker and host; the per-worker limiter when Redis fails.

    One client per event loop (a connection pool belongs to its loop), as upstreams' Redis breakers keep them. The
    script is sent once per server (`EVALSHA`; reloaded if the server lost it), so a request costs one round trip.
    """

    def __init__(self, url: str, *, fallback: MemoryLimiter) -> None:
        from redis.exceptions import RedisError

        self._errors = (RedisError, OSError)
        self.url = url
        self.fallback = fallback
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[redis.Redis, AsyncScript]] = (
            weakref.WeakKeyDictionary()
        )
        self._down_until = -math.inf
        self._warned_at = -math.inf

    def _script(self) -> AsyncScript:
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            import redis.asyncio as redis

            client = redis.Redis.from_url(
                self.url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
            )
            entry = self._clients[loop] = (client, client.register_script(GCRA_SCRIPT))
        return entry[1]

    async def hit(self, key: str, policy: Policy) -> Decision:
        if time.monotonic() < self._down_until:
            return self.fallback.hit_now(key, policy)
        try:
            allowed, value = await self._script()(keys=[KEY_PREFIX + key], args=[policy.interval, policy.tolerance])
        except self._errors as exc:
            self._failed(exc)
            return self.fallback.hit_now(key, policy)
        return policy.admitted(int(value)) if allowed else policy.refused(int(value))

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._down_until = now + REDIS_RETRY_SECONDS
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            logger.warning(
                "Redis failed (%s: %s): rate limits are enforced per worker until it answers again",
                type(exc).__name__,
                exc,
            )

    async def aclose(self) -> None:
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].aclose()


# --- The process's limiter, from the settings ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    default: Policy | None  # RATE_LIMIT
    anonymous: Policy | None  # RATE_LIMIT_ANONYMOUS
    period: int
    backend: Limiter
    overrides: dict[int, Policy] = field(default_factory=dict)  # a client's own limit -> its policy

    def for_client(self, limit: int | None) -> Policy | None:
        if limit is None:
            return self.default
        if limit <= 0:
            return None
        limit = min(limit, self.period * MICROS)  # the database does not bound it: past one per microsecond, no limit
        policy = self.overrides.get(limit)
        if policy is None:
            policy = self.overrides[limit] = Policy("client", limit, self.period)
        return policy


_limits: _Limits | None = None


def _configured() -> _Limits:
    global _limits  # one limiter per process, rebuilt when the settings change (tests)
    if _limits is None:
        period = int(getattr(settings, "RATE_LIMIT_PERIOD", 60))
        default = int(getattr(settings, "RATE_LIMIT", 0))
        anonymous = int(getattr(settings, "RATE_LIMIT_ANONYMOUS", 0))
        memory = MemoryLimiter(max_keys=int(getattr(settings, "RATE_LIMIT_MAX_KEYS", DEFAULT_MAX_KEYS)))
        url = getattr(settings, "REDIS_URL", None)
        _limits = _Limits(
            default=Policy("default", default, period) if default > 0 else None,
            anonymous=Policy("anonymous", anonymous, period) if anonymous > 0 else None,
            period=period,
            backend=RedisLimiter(url, fallback=memory) if url else memory,
        )
    return _limits


def limiter() -> Limiter:
    """The process's limiter: Redis when `REDIS_URL` is set, else per worker."""
    return _configured().backend


def reset() -> None:
    """Forget the limiter and every budget (the next request builds a new one from the settings)."""
    global _limits
    _limits = None


async def aclose() -> None:
    """Close the running loop's Redis client, if any (shutdown, tests)."""
    if _limits is not None and isinstance(_limits.backend, RedisLimiter):
        await _limits.backend.aclose()


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("RATE_LIMIT") or setting == "REDIS_URL":
        reset()


# --- The throttle --------------------------------------------------------------------------------------------------


class RateLimited(exceptions.Throttled):
    default_code = "rate_limited"
    default_detail = "Too many requests for this caller's rate limit."
    extra_detail_singular = "Retry in {wait} second."
    extra_detail_plural = "Retry in {wait} seconds."


class ClientRateThrottle(BaseThrottle):
    """Counts the request against its caller's budget: the client (`request.auth`, a `Caller`), else the client IP.

    The decision's RateLimit fields go on the response through the view's `headers` (DRF's `finalize_response` adds
    them to whatever the view answers, the 429 included). Async: `OnLoopAPIView` awaits it on the loop. A refusal
    raises `RateLimited` itself rather than returning False, so the 429 carries our code (DRF's view would raise its
    generic `Throttled`); throttles listed after this one are then not asked.
    """

    def __init__(self) -> None:
        self.decision: Decision | None = None

    async def allow_request(self, request: Request, view: Any) -> bool:  # type: ignore[override]
        limits = _configured()
        caller = request.auth
        if isinstance(caller, Caller):
            policy = limits.for_client(caller.rate_limit)
            key = f"c:{caller.client_id}"
        else:
            policy = limits.anonymous
            key = "ip:" + _network(request._request.META.get("REMOTE_ADDR") or "")
        if policy is None:
            return True
        decision = self.decision = await limits.backend.hit(key, policy)
        view.headers.update(decision.headers())
        if not decision.allowed:
            raise RateLimited(decision.retry_after)
        return True

    async def wait(self) -> float | None:  # type: ignore[override]
        return None if self.decision is None else self.decision.retry_after


def _network(address: str) -> str:
    """The caller's address as a budget: an IPv4 address, or the /64 of an IPv6 one (one host often has a whole /64).

    REMOTE_ADDR, never X-Forwarded-For: behind a proxy, the server believes that header only from the proxies
    `FORWARDED_ALLOW_IPS` names (uvicorn then puts the client's address in REMOTE_ADDR).
    """
    if ":" not in address:
        return address
    try:
        return socket.inet_pton(socket.AF_INET6, address)[:8].hex() + "::/64"
    except OSError:  # not an IPv6 address (a scoped one, say): the address itself
        return address


# --- The schema ----------------------------------------------------------------------------------------------------

_HEADER_DOCS = {
    "RateLimit-Policy": (
        "string",
        'The caller\'s quota (draft-ietf-httpapi-ratelimit-headers): `"default";q=600;w=60` is 600 requests per '
        "60 seconds. The policy is `default` (the deployment's limit for a client), `client` (this client's own "
        "limit) or `anonymous` (per client IP).",
    ),
    "RateLimit": (
        "string",
        'What is left of the quota (draft-ietf-httpapi-ratelimit-headers): `"default";r=12;t=1` means 12 more '
        "requests, and no more than that within the next second (requests are earned back one by one over the "
        "window).",
    ),
}
_RETRY_AFTER_DOC = "Whole seconds until a request would be admitted again."
# Answered before the throttle runs (authentication, permission, content negotiation; a body over the limit is
# refused before the application): these carry no RateLimit fields.
_BEFORE_THE_CHECK = {"401", "403", "406", "413"}


def document_rate_limits(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every operation guarded by `ClientRateThrottle` documents the 429
    (`rate_limited`, with `Retry-After`) and the RateLimit fields on its responses."""
    from api.problems import PROBLEM_CODES, PROBLEM_CONTENT_TYPE

    codes = ", ".join(f"`{code}`" for code, status in PROBLEM_CODES.items() if status == 429)
    paths = result.get("paths", {})
    for path, _, method, view in generator._get_paths_and_endpoints():
        if not any(issubclass(cls, ClientRateThrottle) for cls in getattr(view, "throttle_classes", ())):
            continue
        operation = paths.get(path, {}).get(method.lower())
        if operation is None:
            continue
        responses = operation.setdefault("responses", {})
        fields = {name: {"schema": {"type": kind}, "description": doc} for name, (kind, doc) in _HEADER_DOCS.items()}
        for status, response in responses.items():
            if status not in _BEFORE_THE_CHECK:
                response.setdefault("headers", {}).update(fields)
        request_id = next(
            (r["headers"][REQUEST_ID_HEADER] for r in responses.values() if REQUEST_ID_HEADER in r.get("headers", {})),
            None,
        )
        responses["429"] = {
            "headers": {
                **({REQUEST_ID_HEADER: request_id} if request_id else {}),
                "Retry-After": {"schema": {"type": "integer"}, "description": _RETRY_AFTER_DOC},
                **fields,
            },
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            "description": f"Over the caller's rate limit (`RateLimit-Policy`); `Retry-After` says when to retry. "
            f"Codes: {codes}.",
        }
        operation["responses"] = dict(sorted(responses.items(), key=lambda item: item[0]))
    return result
