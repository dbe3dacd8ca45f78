"""`OnLoopAPIView` awaits async authentication, permission and throttle classes on the loop, with DRF's semantics
(tests/framework/adrf/ runs adrf's own tests against it too). Requests go through the real ASGI application."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from rest_framework.test import APIRequestFactory

from config import asgi
from tests.api import onloop_views
from tests.api.helpers import assert_problem
from tests.api.onloop_views import CALLS, AsyncDenyAll, AsyncThrottleAfterOne, Whoami


@pytest.fixture(autouse=True)
def _onloop_urls(settings: Any) -> None:
    settings.ROOT_URLCONF = onloop_views.__name__
    CALLS.clear()
    AsyncThrottleAfterOne.seen = 0


async def get(path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=asgi.application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.get(path, headers=headers)


async def test_a_deny_all_async_permission_answers_403_with_its_message() -> None:
    body = assert_problem(await get("/deny/async/"), 403, "permission_denied")

    assert body["detail"] == "Async says no."
    assert "user" not in body
    assert CALLS == ["AsyncDenyAll"]


async def test_an_allowing_async_permission_lets_the_request_through() -> None:
    response = await get("/allow/async/")

    assert response.status_code == 200
    assert CALLS == ["AsyncAllowAll"]


@pytest.mark.parametrize(
    ("path", "message", "calls"),
    [
        ("/deny/sync-then-async/", "Sync says no.", ["SyncAllowAll", "AsyncAllowAll", "SyncDenyAll"]),
        ("/deny/async-then-sync/", "Async says no.", ["AsyncAllowAll", "AsyncDenyAll"]),
    ],
)
async def test_mixed_permissions_are_checked_in_order_and_the_first_denial_speaks(
    path: str, message: str, calls: list[str]
) -> None:
    body = assert_problem(await get(path), 403, "permission_denied")

    assert body["detail"] == message
    assert calls == CALLS  # DRF stops at the first denial


@pytest.mark.parametrize(("path", "status"), [("/deny/operators/", 403), ("/allow/operators/", 200)])
async def test_permission_operators_mixing_sync_and_async_are_awaited(path: str, status: int) -> None:
    assert (await get(path)).status_code == status
    assert "AsyncDenyAll" in CALLS


async def test_authenticators_are_tried_in_order_and_an_async_one_is_awaited() -> None:
    by_token = await get("/auth/", Authorization="Token alice")
    by_name = await get("/auth/", Authorization="Name bob")

    assert by_token.status_code == 200
    assert by_token.json() == {"user": "alice", "auth": "token"}
    assert by_name.json() == {"user": "bob", "auth": "name"}
    assert CALLS == ["AsyncToken", "AsyncIsAuthenticated", "AsyncToken", "SyncBasicName", "AsyncIsAuthenticated"]


async def test_an_async_authenticator_that_refuses_answers_401_with_its_challenge_and_ends_the_search() -> None:
    response = await get("/auth/", Authorization="Token bad")

    body = assert_problem(response, 401, "authentication_failed")
    assert body["detail"] == "Unknown token."
    assert response.headers["WWW-Authenticate"] == "Token"
    assert CALLS == ["AsyncToken"]


async def test_no_credentials_with_an_async_is_authenticated_permission_answers_401() -> None:
    response = await get("/auth/")

    assert_problem(response, 401, "not_authenticated")
    assert CALLS == ["AsyncToken", "SyncBasicName", "AsyncIsAuthenticated"]


async def test_an_async_throttle_answers_429_with_its_awaited_wait_as_retry_after() -> None:
    assert (await get("/throttle/async/")).status_code == 200

    response = await get("/throttle/async/")

    assert_problem(response, 429, "throttled")
    assert response.headers["Retry-After"] == "7"


async def test_every_throttle_is_asked_and_the_longest_wait_wins() -> None:
    first = await get("/throttle/mixed/")  # the sync throttle refuses (3 s); the async one still allows
    second = await get("/throttle/mixed/")  # both refuse: 7 s wins

    assert first.headers["Retry-After"] == "3"
    assert second.headers["Retry-After"] == "7"
    assert CALLS == ["SyncThrottleWait3", "AsyncThrottleAfterOne"] * 2


@pytest.mark.parametrize("check", ["check_permissions", "check_object_permissions"])
async def test_a_sync_check_on_the_loop_refuses_an_async_permission_instead_of_reading_its_coroutine_as_allowed(
    check: str,
) -> None:
    view = type("View", (Whoami,), {"permission_classes": (AsyncDenyAll,)})()
    request = view.initialize_request(APIRequestFactory().get("/"))
    args = (request,) if check == "check_permissions" else (request, object())

    with pytest.raises(TypeError, match=f"await OnLoopAPIView.a{check}"):
        getattr(view, check)(*args)
    assert CALLS == []  # the coroutine was created, closed, never run


async def test_a_sync_check_in_a_worker_thread_awaits_an_async_permission() -> None:
    """As adrf's do (for check_object_permissions, which adrf's generics call through sync_to_async, the vendored
    tests/framework/adrf/test_object_permissions.py pins it)."""
    from asgiref.sync import sync_to_async
    from rest_framework.exceptions import PermissionDenied

    view = type("View", (Whoami,), {"permission_classes": (AsyncDenyAll,)})()
    request = view.initialize_request(APIRequestFactory().get("/"))

    with pytest.raises(PermissionDenied, match=r"Async says no\."):
        await sync_to_async(view.check_permissions)(request)
    assert CALLS == ["AsyncDenyAll"]
