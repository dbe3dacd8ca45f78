"""A URLconf of `OnLoopAPIView`s whose authentication, permission and throttle classes are async, sync, or mixed
(tests point settings.ROOT_URLCONF here). Every check records its call in `CALLS`, so a test can tell that an async
check was awaited (a coroutine that is only created records nothing)."""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from api.onloop import OnLoopAPIView

CALLS: list[str] = []


class User:
    is_authenticated = True

    def __init__(self, name: str) -> None:
        self.name = name


class AsyncDenyAll(BasePermission):
    message = "Async says no."
    code = "async_denied"

    async def has_permission(self, request: Request, view: Any) -> bool:
        CALLS.append("AsyncDenyAll")
        return False

    async def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        CALLS.append("AsyncDenyAll.object")
        return False


class AsyncAllowAll(BasePermission):
    message = "never shown"

    async def has_permission(self, request: Request, view: Any) -> bool:
        CALLS.append("AsyncAllowAll")
        return True


class SyncDenyAll(BasePermission):
    message = "Sync says no."
    code = "sync_denied"

    def has_permission(self, request: Request, view: Any) -> bool:
        CALLS.append("SyncDenyAll")
        return False


class SyncAllowAll(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        CALLS.append("SyncAllowAll")
        return True


class AsyncIsAuthenticated(BasePermission):
    async def has_permission(self, request: Request, view: Any) -> bool:
        CALLS.append("AsyncIsAuthenticated")
        return bool(request.user and request.user.is_authenticated)


class AsyncToken(BaseAuthentication):
    """`Authorization: Token <name>`; the name "bad" is refused (401)."""

    async def authenticate(self, request: Request) -> tuple[User, str] | None:
        CALLS.append("AsyncToken")
        scheme, _, name = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Token":
            return None
        if name == "bad":
            raise AuthenticationFailed("Unknown token.")
        return User(name), "token"

    def authenticate_header(self, request: Request) -> str:
        return "Token"


class SyncBasicName(BaseAuthentication):
    """`Authorization: Name <name>`, sync."""

    def authenticate(self, request: Request) -> tuple[User, str] | None:
        CALLS.append("SyncBasicName")
        scheme, _, name = request.headers.get("Authorization", "").partition(" ")
        return (User(name), "name") if scheme == "Name" else None


class AsyncThrottleAfterOne(BaseThrottle):
    """Allows the first request of each test (reset `seen`), then asks the client to wait 7 s."""

    seen = 0

    async def allow_request(self, request: Request, view: Any) -> bool:
        CALLS.append("AsyncThrottleAfterOne")
        type(self).seen += 1
        return type(self).seen <= 1

    async def wait(self) -> float:
        return 7.0


class SyncThrottleWait3(BaseThrottle):
    def allow_request(self, request: Request, view: Any) -> bool:
        CALLS.append("SyncThrottleWait3")
        return False

    def wait(self) -> float:
        return 3.0


class Whoami(OnLoopAPIView):
    authentication_classes: tuple[type[BaseAuthentication], ...] = ()
    permission_classes: tuple[type[BasePermission], ...] = ()
    throttle_classes: tuple[type[BaseThrottle], ...] = ()

    async def get(self, request: Request) -> Response:
        user = request.user
        return Response({"user": getattr(user, "name", None), "auth": request.auth})


def view(**classes: Any) -> Any:
    return type("View", (Whoami,), classes).as_view()


urlpatterns = [
    path("deny/async/", view(permission_classes=(AsyncDenyAll,))),
    path("allow/async/", view(permission_classes=(AsyncAllowAll,))),
    path("deny/sync-then-async/", view(permission_classes=(SyncAllowAll, AsyncAllowAll, SyncDenyAll, AsyncDenyAll))),
    path("deny/async-then-sync/", view(permission_classes=(AsyncAllowAll, AsyncDenyAll, SyncDenyAll))),
    path("deny/operators/", view(permission_classes=(SyncAllowAll & AsyncDenyAll,))),
    path("allow/operators/", view(permission_classes=(AsyncDenyAll | SyncAllowAll,))),
    path(
        "auth/",
        view(authentication_classes=(AsyncToken, SyncBasicName), permission_classes=(AsyncIsAuthenticated,)),
    ),
    path("throttle/async/", view(throttle_classes=(AsyncThrottleAfterOne,))),
    path("throttle/mixed/", view(throttle_classes=(SyncThrottleWait3, AsyncThrottleAfterOne))),
    path(
        "everything-async/",
        view(
            authentication_classes=(AsyncToken,),
            permission_classes=(AsyncIsAuthenticated, AsyncAllowAll),
            throttle_classes=(AsyncThrottleAfterOne,),
        ),
    ),
]
