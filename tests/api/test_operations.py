"""/healthz and /api/upstreams/: liveness, and the configured upstreams without their secrets."""

from __future__ import annotations

from typing import Any

from upstreams import get_registry, set_registry


async def test_healthz_is_ok_without_calling_upstreams(api: Any, upstream_mock: Any) -> None:
    response = await api.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert not upstream_mock.calls


async def test_upstreams_lists_hosts_and_limits_but_never_secrets(api: Any, settings: Any) -> None:
    settings.UPSTREAMS = {
        "catalog": {
            "URL": "https://user:pw@catalog.example:8443/v2",
            "TIMEOUT": "3",
            "TOKEN": "tok-secret",
            "HEADERS": "X-Api-Key: key-secret",
        }
    }
    set_registry(None)

    response = await api.get("/api/upstreams/")

    assert response.status_code == 200
    assert response.json()["results"] == [
        {
            "name": "catalog",
            "host": "catalog.example:8443",
            "timeout": 3.0,
            "connect_timeout": 2.0,
            "max_connections": 1000,
            "max_body_bytes": 5242880,
            "retries": 2,
            "retry_backoff": 0.05,
            "retry_backoff_max": 1.0,
            "retry_after_max": 5.0,
            "breaker_failures": 5,
            "breaker_failure_ratio": 0.5,
            "breaker_min_calls": 20,
            "breaker_window": 30.0,
            "breaker_cooldown": 10.0,
            "max_concurrency": 1000,
            "queue_timeout": 0.5,
            "coalesce": True,
            "cache_ttl": 0.0,
            "stale_if_error": 0.0,
            "circuit": {"state": "closed", "consecutive_failures": 0, "retry_after": None},
        }
    ]
    text = response.content.decode()
    for secret in ("tok-secret", "key-secret", "pw", "user"):
        assert secret not in text


async def test_upstreams_shows_every_resilience_setting_as_configured(api: Any, settings: Any) -> None:
    settings.UPSTREAMS = {
        "fx": {
            "URL": "http://fx.example",
            "RETRY_BACKOFF": "0.2",
            "RETRY_BACKOFF_MAX": "3",
            "RETRY_AFTER_MAX": "7",
            "BREAKER_FAILURES": "9",
            "BREAKER_FAILURE_RATIO": "0.25",
            "BREAKER_MIN_CALLS": "40",
            "BREAKER_WINDOW": "60",
            "BREAKER_COOLDOWN": "15",
            "QUEUE_TIMEOUT": "0.1",
            "COALESCE": "false",
        }
    }
    set_registry(None)

    (fx,) = (await api.get("/api/upstreams/")).json()["results"]

    assert {key: fx[key] for key in fx if key.startswith(("retry_", "breaker_"))} == {
        "retry_backoff": 0.2,
        "retry_backoff_max": 3.0,
        "retry_after_max": 7.0,
        "breaker_failures": 9,
        "breaker_failure_ratio": 0.25,
        "breaker_min_calls": 40,
        "breaker_window": 60.0,
        "breaker_cooldown": 15.0,
    }
    assert (fx["queue_timeout"], fx["coalesce"]) == (0.1, False)


async def test_readyz_reports_circuits_and_fails_only_when_every_circuit_is_open(api: Any, settings: Any) -> None:
    registry = get_registry()
    assert (await api.get("/readyz")).json()["status"] == "ready"

    names = list(registry.breakers)
    for breaker in registry.breakers.values():
        breaker._open()  # white-box: the breaker's own tests cover how it gets there
    registry.breakers[names[0]]._close()
    degraded = await api.get("/readyz")
    assert degraded.status_code == 200
    assert degraded.json()["status"] == "degraded"
    assert degraded.json()["circuits"][names[1]] == "open"

    registry.breakers[names[0]]._open()
    unavailable = await api.get("/readyz")
    assert unavailable.status_code == 503
    assert unavailable.json()["status"] == "unavailable"
