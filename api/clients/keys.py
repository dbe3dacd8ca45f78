"""API keys: their format, how one is made, and how a presented key becomes a `Caller`, cached per worker.

    tb_<prefix: 8>_<secret: 40><checksum: 6>        (base62; the checksum is a CRC-32 of what precedes it)

The checksum lets a mistyped, truncated or random key be refused without a database query (and lets secret
scanners recognise ours). A well-formed key is looked up by its prefix and compared by SHA-256 digest.

`KeyCache` is the per-worker lookup cache: bounded (least recently used out), entries live `API_KEY_CACHE_TTL`
seconds (never past the key's expiry), unknown and unusable keys are cached too (negative entries), and concurrent
misses for one key share a single query. A cached answer costs no query and no thread hop. Any change to a key or a
client saved in this process (the admin, the commands) empties this worker's cache at once; other workers see it
within the TTL. `LastUsed` collects when each key was used and writes them in one query per flush interval.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from api import database

from .identity import Caller
from .models import ApiKey, Client

__all__ = [
    "KEY_MARK",
    "KEY_PATTERN",
    "KeyCache",
    "LastUsed",
    "NewKey",
    "create_key",
    "digest",
    "is_well_formed",
    "key_cache",
    "last_used",
]

logger = logging.getLogger("tributary.clients")

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIX_LENGTH = 8
SECRET_LENGTH = 40
CHECKSUM_LENGTH = 6
KEY_MARK = "tb_"  # what every key starts with: a Bearer token without it is not ours
KEY_PATTERN = re.compile(rf"tb_([0-9A-Za-z]{{{PREFIX_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH + CHECKSUM_LENGTH}}})")


def _base62(number: int, length: int) -> str:
    digits = []
    for _ in range(length):
        number, remainder = divmod(number, 62)
        digits.append(_ALPHABET[remainder])
    return "".join(reversed(digits))


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def is_well_formed(key: str) -> bool:
    """The key has our shape and its checksum matches: worth a lookup."""
    if KEY_PATTERN.fullmatch(key) is None:
        return False
    body, checksum = key[:-CHECKSUM_LENGTH], key[-CHECKSUM_LENGTH:]
    return hmac.compare_digest(_checksum(body), checksum)


def prefix_of(key: str) -> str:
    return key[3 : 3 + PREFIX_LENGTH]


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    """A key just made: `key` is shown once and never stored."""

    key: str
    record: ApiKey


def create_key(client: Client, *, name: str = "", expires: datetime | None = None) -> NewKey:
    """A new key for `client`, saved (sync: the commands and the admin call it)."""
    while True:
        prefix = _random(PREFIX_LENGTH)
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    body = f"tb_{prefix}_{_random(SECRET_LENGTH)}"
    key = body + _checksum(body)
    record = ApiKey.objects.create(client=client, name=name, prefix=prefix, digest=digest(key), expires=expires)
    return NewKey(key=key, record=record)


# --- The per-worker cache ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a key is: a `Caller`, or why it is refused ("unknown", "revoked", "expired")."""

    caller: Caller | None
    refusal: str | None = None


@dataclass(slots=True)
class _Entry:
    verdict: Verdict
    until: float  # monotonic


Lookup = Callable[[str], Coroutine[Any, Any, tuple[Verdict, float | None]]]


class KeyCache:
    """Presented key's digest -> `Verdict`, per worker (see the module docstring)."""

    def __init__(self, *, ttl: float, max_size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._pending: dict[str, asyncio.Future[Verdict]] = {}
        self.queries = 0  # database lookups made: for tests and benchmarks

    def clear(self) -> None:
        """Forget everything (thread-safe enough: one C-level call under the GIL; the admin runs in a thread)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, key_digest: str) -> Verdict | None:
        entry = self._entries.get(key_digest)
        if entry is None:
            return None
        if entry.until <= self.clock():
            self._entries.pop(key_digest, None)
            return None
        return entry.verdict

    async def verdict(self, key: str, lookup: Lookup | None = None) -> Verdict:
        """The cached verdict for `key`, or one database lookup shared by every concurrent asker."""
        key_digest = digest(key)
        found = self.cached(key_digest)
        if found is not None:
            return found
        pending = self._pending.get(key_digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._pending[key_digest] = future
        try:
            self.queries += 1
            verdict, expires_in = await (lookup or lookup_key)(key)
            lifetime = self.ttl if expires_in is None else max(0.0, min(self.ttl, expires_in))
            self._store(key_digest, verdict, lifetime)
            future.set_result(verdict)
            return verdict
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self._pending[key_digest]

    def _store(self, key_digest: str, verdict: Verdict, lifetime: float) -> None:
        if lifetime <= 0:
            return
        self._entries[key_digest] = _Entry(verdict, self.clock() + lifetime)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)  # the oldest entry: insertion order (refreshed entries re-enter)


async def lookup_key(key: str) -> tuple[Verdict, float | None]:
    """The database's verdict on a well-formed key, and how many seconds until it would change on its own (expiry).

    Natively async on PostgreSQL (api/database.py: no thread hop even on a cache miss), one hop on SQLite; README
    "Database access from async views" has the measurement behind that choice.
    """
    record = await database.afirst(ApiKey.objects.select_related("client").filter(prefix=prefix_of(key)))
    if record is None or not hmac.compare_digest(record.digest, digest(key)):
        return Verdict(None, "unknown"), None
    now = timezone.now()
    if (record.revoked is not None and record.revoked <= now) or not record.client.active:
        return Verdict(None, "revoked"), None
    if record.expires is not None and record.expires <= now:
        return Verdict(None, "expired"), None
    client = record.client
    caller = Caller(
        client_id=client.pk,
        client_name=client.name,
        key_id=record.pk,
        key_prefix=record.prefix,
        rate_limit=client.rate_limit,
        scopes=frozenset(client.scopes or ()),
    )
    expires_in = None
    if record.expires is not None:
        expires_in = (record.expires - now).total_seconds()
    if record.revoked is not None:  # revoked in the future: a scheduled revocation
        expires_in = min(expires_in or float("inf"), (record.revoked - now).total_seconds())
    return Verdict(caller), expires_in


# --- Last used, in batches -----------------------------------------------------------------------------------------


class LastUsed:
    """When each key was last used, written in one query per `interval` seconds (never one write per request).

    `touch()` is a dict assignment; a task on the running loop flushes every `interval`, and `flush()` runs at
    shutdown (config/asgi.py's lifespan). A flush failure is logged and the times kept for the next one.
    """

    def __init__(self, *, interval: float) -> None:
        self.interval = interval
        self._seen: dict[int, datetime] = {}
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0  # queries written: for tests

    def touch(self, key_id: int) -> None:
        self._seen[key_id] = timezone.now()
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._flush_periodically())

    async def _flush_periodically(self) -> None:
        while self._seen:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        seen, self._seen = self._seen, {}
        if not seen:
            return
        try:
            await database.arun(_write_last_used, seen)  # one hop; the connection goes back to the pool after
            self.flushes += 1
        except Exception:
            logger.warning("Could not record when %d API key(s) were last used", len(seen), exc_info=True)
            for key_id, when in seen.items():
                self._seen.setdefault(key_id, when)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.flush()


def _write_last_used(seen: dict[int, datetime]) -> None:
    records = [ApiKey(pk=key_id, last_used=when) for key_id, when in seen.items()]
    ApiKey.objects.bulk_update(records, ["last_used"])  # one UPDATE ... CASE for the whole batch


_cache: KeyCache | None = None
_last_used: LastUsed | None = None


def key_cache() -> KeyCache:
    """This worker's key cache, made from the settings at first use."""
    global _cache
    if _cache is None:
        from django.conf import settings

        _cache = KeyCache(ttl=settings.API_KEY_CACHE_TTL, max_size=settings.API_KEY_CACHE_SIZE)
    return _cache


def last_used() -> LastUsed:
    global _last_used
    if _last_used is None:
        from django.conf import settings

        _last_used = LastUsed(interval=settings.API_KEY_LAST_USED_INTERVAL)
    return _last_used


def reset() -> None:
    """Forget the worker's cache and pending last-used times, unwritten (tests; settings changes)."""
    global _cache, _last_used
    if _last_used is not None and _last_used._task is not None:
        _last_used._task.cancel()
    _cache = None
    _last_used = None


def forget_cached_keys(**kwargs: Any) -> None:
    """Signal receiver: a key or client changed in this process; its cached verdicts may be wrong now."""
    if _cache is not None:
        _cache.clear()


def connect_signals() -> None:
    from django.db.models.signals import post_delete, post_save

    for model in (ApiKey, Client):
        post_save.connect(forget_cached_keys, sender=model, dispatch_uid=f"forget-keys-{model.__name__}-save")
        post_delete.connect(forget_cached_keys, sender=model, dispatch_uid=f"forget-keys-{model.__name__}-delete")
