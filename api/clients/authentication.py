"""API-key authentication (a DRF authentication class) and the permission that goes with it.

Clients send `Authorization: Bearer <key>`, or `X-API-Key: <key>` when `Authorization` carries the end user's own
credentials (which an upstream may be configured to receive: `UPSTREAM_<NAME>_FORWARD_HEADERS`). Our keys say what
they are (`tb_...`): `Authorization` holds the key only as `Bearer tb_...`; any other credentials there are the end
user's, left alone (and, where keys are required and no `X-API-Key` came, the request has no key: 401). With
`X-API-Key`, `Authorization` is always the end user's. A key presented in `Authorization` is never forwarded: the
request's forwardable headers lose it here.

Refusals are 401 problem documents with an RFC 6750 challenge in `WWW-Authenticate` (`error="invalid_token"` when a
key was presented but is malformed, unknown, revoked or expired); a valid key whose client may not call the
operation is a 403. `authenticate` is a coroutine function: `OnLoopAPIView` awaits it on the loop, and a cached key
costs no database query and no thread hop (api/clients/keys.py).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from upstreams import incoming_headers

from .identity import Caller
from .keys import KEY_MARK, is_well_formed, key_cache, last_used

__all__ = ["API_KEY_HEADER", "ApiKeyAuthentication", "CallerAllowed", "operation_id"]

API_KEY_HEADER = "X-API-Key"
_API_KEY_META = "HTTP_X_API_KEY"
REALM = "tributary"
_REFUSED = "tributary_key_refused"  # set on the Django request when a presented key was refused

_REFUSALS = {
    "malformed": "The API key is malformed.",
    "unknown": "The API key is not known.",
    "revoked": "The API key has been revoked.",
    "expired": "The API key has expired.",
}


class ApiKeyAuthentication(BaseAuthentication):
    """`request.auth` and `request.user` become the key's `Caller`; no key: anonymous (both None)."""

    async def authenticate(self, request: Request) -> tuple[Caller, Caller] | None:  # type: ignore[override]
        key, from_authorization = _presented_key(request)
        if key is None:
            return None
        if from_authorization:
            _stop_forwarding_authorization()
        if not is_well_formed(key):
            return self._refuse(request, "malformed")
        verdict = await key_cache().verdict(key)
        if verdict.caller is None:
            return self._refuse(request, verdict.refusal or "unknown")
        last_used().touch(verdict.caller.key_id)
        return verdict.caller, verdict.caller

    def _refuse(self, request: Request, refusal: str) -> Any:
        setattr(request._request, _REFUSED, True)  # the challenge says why (authenticate_header)
        raise exceptions.AuthenticationFailed(_REFUSALS[refusal])

    def authenticate_header(self, request: Request) -> str:
        if getattr(request._request, _REFUSED, False):
            return f'Bearer realm="{REALM}", error="invalid_token"'
        return f'Bearer realm="{REALM}"'


def _presented_key(request: Request) -> tuple[str | None, bool]:
    """The key and whether it came in `Authorization` (None: no key of ours was sent)."""
    meta = request._request.META  # what `headers.get()` reads (`X-API-Key` is `HTTP_X_API_KEY`), without its look-up
    key = meta.get(_API_KEY_META)
    if key is not None:
        return key.strip(), False
    scheme, _, credentials = meta.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials.startswith(KEY_MARK):
        return credentials, True
    return None, False  # no Authorization, or the end user's own credentials


def _stop_forwarding_authorization() -> None:
    headers = incoming_headers.get()
    if headers is not None and "Authorization" in headers:
        incoming_headers.set(_Without(headers, "authorization"))


class _Without(dict[str, str]):
    """The request's headers minus one, still case-insensitive for `get` (what upstream forwarding uses)."""

    def __init__(self, headers: Any, dropped: str) -> None:
        super().__init__((name.lower(), value) for name, value in headers.items() if name.lower() != dropped)

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class CallerAllowed(BasePermission):
    """Anonymous calls only where allowed (`API_KEYS_REQUIRED` off); a client only to the operations in its scopes."""

    message = "This API key may not call this operation."

    def has_permission(self, request: Request, view: Any) -> bool:
        caller = request.auth
        if not isinstance(caller, Caller):
            if settings.API_KEYS_REQUIRED:
                raise exceptions.NotAuthenticated("An API key is required.")
            return True
        return caller.allows(operation_id(view, request))


def operation_id(view: Any, request: Request) -> str | None:
    """The OpenAPI operation id of the view's handler for this request (`extend_schema(operation_id=...)`)."""
    method = (request.method or "get").lower()
    handler = getattr(view, getattr(view, "action", None) or method, None)
    return getattr(handler, "operation_id", None)
