"""The response cache: freshness from Cache-Control, fresh vs stale, stale-if-error, ETag revalidation, and keys
namespaced per upstream.

The clock is `time.time` as upstreams.cache sees it, moved by a fixture; Django's local-memory cache reads the same
clock, so entries also expire when the fake clock passes their keep-until.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache as django_cache

from upstreams.cache import CacheEntry, ResponseCache, freshness
from upstreams.config import CachePolicy

URL = "http://catalog.upstream.test/items/1"
BODY = b'{"id": 1}'
START = 1_700_000_000.0


class FakeTime:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    django_cache.clear()
    yield
    django_cache.clear()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime(START)
    monkeypatch.setattr("upstreams.cache.time.time", fake)
    return fake


def make_cache(name: str = "catalog", *, ttl: float = 0.0, stale_if_error: float = 0.0) -> ResponseCache:
    return ResponseCache(name, CachePolicy(ttl=ttl, stale_if_error=stale_if_error))


# freshness()


@pytest.mark.parametrize(
    ("cache_control", "expected"),
    [
        pytest.param("max-age=60", 60.0, id="max-age"),
        pytest.param("public, max-age=60", 60.0, id="max-age-with-public"),
        pytest.param("Max-Age=60", 60.0, id="directive-names-are-case-insensitive"),
        pytest.param('max-age="60"', 60.0, id="quoted-max-age"),
        pytest.param("max-age=0", 0.0, id="max-age-zero"),
        pytest.param("max-age=60, s-maxage=300", 300.0, id="s-maxage-over-max-age"),
        pytest.param("s-maxage=300, max-age=60", 300.0, id="s-maxage-over-max-age-either-order"),
        pytest.param("s-maxage=soon, max-age=60", 60.0, id="malformed-s-maxage-falls-back-to-max-age"),
        pytest.param("no-store", None, id="no-store"),
        pytest.param("no-store, max-age=60", None, id="no-store-wins-over-max-age"),
        pytest.param("private, max-age=60", None, id="private"),
        pytest.param("no-cache", 0.0, id="no-cache"),
        pytest.param("no-cache, max-age=60", 0.0, id="no-cache-wins-over-max-age"),
        pytest.param("max-age=soon", 7.0, id="malformed-max-age-ignored"),
        pytest.param("max-age=-5", 7.0, id="negative-max-age-ignored"),
        pytest.param("max-age=1.5", 7.0, id="fractional-max-age-ignored"),
        pytest.param("max-age=", 7.0, id="empty-max-age-ignored"),
        pytest.param("public", 7.0, id="no-lifetime-directive"),
        pytest.param("", 7.0, id="empty-header"),
    ],
)
def test_freshness_from_cache_control(cache_control: str, expected: float | None) -> None:
    assert freshness({"cache-control": cache_control}, default_ttl=7.0) == expected


def test_freshness_without_cache_control_is_default_ttl() -> None:
    assert freshness({}, default_ttl=42.0) == 42.0
    assert freshness({"etag": '"v1"'}, default_ttl=0.0) == 0.0


def test_freshness_ignores_max_age_with_non_ascii_digit() -> None:
    assert freshness({"cache-control": "max-age=²"}, default_ttl=7.0) == 7.0


# CacheEntry


def test_cache_entry_fresh_before_fresh_until_only() -> None:
    entry = CacheEntry(body=BODY, etag=None, stored_at=100.0, fresh_until=110.0, keep_until=140.0)

    assert entry.is_fresh(109.9)
    assert not entry.is_fresh(110.0)
    assert entry.age(104.0) == 4.0
    assert entry.age(99.0) == 0.0  # a clock that stepped back never gives a negative age


def test_cache_entry_stale_usable_only_within_stale_if_error_window() -> None:
    entry = CacheEntry(body=BODY, etag=None, stored_at=100.0, fresh_until=110.0, keep_until=140.0)
    policy = CachePolicy(stale_if_error=30.0)

    assert entry.stale_usable(120.0, policy)
    assert entry.stale_usable(139.9, policy)
    assert not entry.stale_usable(140.0, policy)
    assert not entry.stale_usable(120.0, CachePolicy(stale_if_error=0.0))


# ResponseCache


async def test_store_then_get_round_trips_body_and_etag(clock: FakeTime) -> None:
    responses = make_cache()

    fresh_for = await responses.store(URL, BODY, {"cache-control": "max-age=60", "etag": '"v1"'}, ttl=None)
    entry = await responses.get(URL)

    assert fresh_for == 60.0
    assert entry is not None
    assert entry.body == BODY
    assert entry.etag == '"v1"'
    assert entry.stored_at == START
    assert entry.fresh_until == START + 60.0


async def test_get_unknown_url_returns_none(clock: FakeTime) -> None:
    assert await make_cache().get(URL) is None


async def test_get_ignores_foreign_value_under_its_key(clock: FakeTime) -> None:
    responses = make_cache()
    django_cache.set(responses.key(URL), {"not": "an entry"})

    assert await responses.get(URL) is None


async def test_entry_is_fresh_within_max_age_and_stale_after(clock: FakeTime) -> None:
    responses = make_cache(stale_if_error=60.0)
    await responses.store(URL, BODY, {"cache-control": "max-age=10"}, ttl=None)

    clock.advance(9)
    entry = await responses.get(URL)
    assert entry is not None
    assert entry.is_fresh(clock.now)

    clock.advance(2)
    entry = await responses.get(URL)
    assert entry is not None
    assert not entry.is_fresh(clock.now)
    assert entry.age(clock.now) == 11.0


async def test_call_ttl_overrides_policy_ttl_without_cache_control(clock: FakeTime) -> None:
    responses = make_cache(ttl=300.0)

    assert await responses.store(URL, BODY, {}, ttl=5.0) == 5.0
    entry = await responses.get(URL)

    assert entry is not None
    assert entry.fresh_until == START + 5.0


async def test_policy_ttl_applies_without_cache_control_or_call_ttl(clock: FakeTime) -> None:
    responses = make_cache(ttl=30.0)

    assert await responses.store(URL, BODY, {}, ttl=None) == 30.0


async def test_upstream_cache_control_wins_over_ttl(clock: FakeTime) -> None:
    responses = make_cache(ttl=300.0)

    assert await responses.store(URL, BODY, {"cache-control": "max-age=20"}, ttl=600.0) == 20.0


async def test_stale_entry_usable_on_error_only_within_stale_if_error_window(clock: FakeTime) -> None:
    responses = make_cache(stale_if_error=30.0)
    await responses.store(URL, BODY, {"cache-control": "max-age=10"}, ttl=None)

    clock.advance(25)  # stale, 15 s into the stale-if-error window
    entry = await responses.get(URL)
    assert entry is not None
    assert not entry.is_fresh(clock.now)
    assert entry.stale_usable(clock.now, responses.policy)

    clock.advance(20)  # past fresh + stale-if-error, with no ETag to revalidate: gone
    assert await responses.get(URL) is None


@pytest.mark.parametrize(
    ("headers", "ttl"),
    [
        pytest.param({}, None, id="no-ttl-anywhere"),
        pytest.param({}, 0.0, id="call-ttl-zero"),
        pytest.param({"cache-control": "max-age=0"}, 60.0, id="max-age-zero"),
        pytest.param({"cache-control": "no-cache"}, 60.0, id="no-cache-without-etag"),
        pytest.param({"cache-control": "no-store", "etag": '"v1"'}, 60.0, id="no-store-even-with-etag"),
        pytest.param({"cache-control": "private, max-age=60"}, None, id="private"),
    ],
)
async def test_nothing_stored_when_not_cacheable(clock: FakeTime, headers: dict[str, str], ttl: float | None) -> None:
    responses = make_cache(ttl=0.0, stale_if_error=0.0)

    assert await responses.store(URL, BODY, headers, ttl=ttl) is None
    assert await responses.get(URL) is None


async def test_stale_if_error_window_alone_makes_response_worth_storing(clock: FakeTime) -> None:
    responses = make_cache(ttl=0.0, stale_if_error=30.0)

    assert await responses.store(URL, BODY, {}, ttl=None) == 0.0
    entry = await responses.get(URL)

    assert entry is not None
    assert not entry.is_fresh(clock.now)
    assert entry.stale_usable(clock.now, responses.policy)


async def test_etag_keeps_stale_entry_for_revalidation(clock: FakeTime) -> None:
    with_etag, without_etag = make_cache("with_etag"), make_cache("without_etag")
    await with_etag.store(URL, BODY, {"cache-control": "max-age=10", "etag": '"v1"'}, ttl=None)
    await without_etag.store(URL, BODY, {"cache-control": "max-age=10"}, ttl=None)

    clock.advance(600)
    entry = await with_etag.get(URL)

    assert entry is not None
    assert not entry.is_fresh(clock.now)
    assert entry.etag == '"v1"'
    assert await without_etag.get(URL) is None


async def test_no_cache_with_etag_is_stored_for_revalidation_every_time(clock: FakeTime) -> None:
    responses = make_cache()

    assert await responses.store(URL, BODY, {"cache-control": "no-cache", "etag": '"v1"'}, ttl=60.0) == 0.0
    entry = await responses.get(URL)

    assert entry is not None
    assert not entry.is_fresh(clock.now)
    assert entry.etag == '"v1"'


async def test_refresh_after_304_makes_entry_fresh_again(clock: FakeTime) -> None:
    responses = make_cache()
    await responses.store(URL, BODY, {"cache-control": "max-age=10", "etag": '"v1"'}, ttl=None)
    clock.advance(60)
    stale = await responses.get(URL)
    assert stale is not None
    assert not stale.is_fresh(clock.now)

    await responses.refresh(URL, stale, {"Cache-Control": "max-age=30"}, ttl=None)  # a 304 without an ETag
    entry = await responses.get(URL)

    assert entry is not None
    assert entry.is_fresh(clock.now)
    assert entry.fresh_until == clock.now + 30.0
    assert entry.stored_at == clock.now
    assert entry.body == BODY
    assert entry.etag == '"v1"'


async def test_refresh_takes_new_etag_from_304(clock: FakeTime) -> None:
    responses = make_cache()
    await responses.store(URL, BODY, {"cache-control": "max-age=10", "etag": '"v1"'}, ttl=None)
    stale = await responses.get(URL)
    assert stale is not None

    await responses.refresh(URL, stale, {"ETag": '"v2"', "Cache-Control": "max-age=30"}, ttl=None)
    entry = await responses.get(URL)

    assert entry is not None
    assert entry.etag == '"v2"'


async def test_keys_are_namespaced_per_upstream(clock: FakeTime) -> None:
    catalog, reviews = make_cache("catalog"), make_cache("reviews")
    assert catalog.key(URL) != reviews.key(URL)

    await catalog.store(URL, b'"catalog"', {"cache-control": "max-age=60"}, ttl=None)
    assert await reviews.get(URL) is None

    await reviews.store(URL, b'"reviews"', {"cache-control": "max-age=60"}, ttl=None)
    catalog_entry, reviews_entry = await catalog.get(URL), await reviews.get(URL)

    assert catalog_entry is not None
    assert reviews_entry is not None
    assert (catalog_entry.body, reviews_entry.body) == (b'"catalog"', b'"reviews"')


async def test_different_urls_do_not_share_an_entry(clock: FakeTime) -> None:
    responses = make_cache()
    await responses.store(URL, BODY, {"cache-control": "max-age=60"}, ttl=None)

    assert await responses.get(URL + "?page=2") is None
    assert responses.key(URL) != responses.key(URL + "?page=2")
