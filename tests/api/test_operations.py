"""/healthz and /api/upstreams/: liveness, and the configured upstreams without their secrets."""

from __future__ import annotations

from typing import Any

from upstreams import set_registry


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
            "max_connections": 100,
            "max_body_bytes": 5242880,
        }
    ]
    text = response.content.decode()
    for secret in ("tok-secret", "key-secret", "pw", "user"):
        assert secret not in text
