"""With REDIS_URL, the response cache is Django's Redis cache: what one process fetched, another answers from."""

from __future__ import annotations

from typing import Any

import httpx

from upstreams import UpstreamClient, parse_upstreams


async def test_a_response_cached_by_one_process_is_a_hit_in_another(redis_url: str, settings: Any) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json={"n": calls}, headers={"Cache-Control": "max-age=60"})

    config = parse_upstreams({"fx": {"URL": "http://fx.test"}})["fx"]
    first = UpstreamClient(config, transport=httpx.MockTransport(answer))
    second = UpstreamClient(config, transport=httpx.MockTransport(answer))  # another worker: its own everything

    assert (await first.fetch_json("rates/USD")).cache == "miss"
    fetched = await second.fetch_json("rates/USD")

    assert (fetched.cache, fetched.payload, calls) == ("hit", {"n": 1}, 1)
    await first.aclose()
    await second.aclose()
