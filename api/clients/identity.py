"""`Caller`: what the rest of the service knows about an authenticated client, as cached per worker.

A frozen value built from the database once per cache entry (api/clients/keys.py); `request.auth` holds it for an
authenticated request (None for an anonymous one), so nothing on the request path touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = ["Caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated client, through one of its keys. Also `request.user`: it answers DRF's `is_authenticated`."""

    is_authenticated: ClassVar[bool] = True
    is_anonymous: ClassVar[bool] = False

    client_id: int
    client_name: str
    key_id: int
    key_prefix: str
    # Requests per rate-limit period for this client; None: the deployment's default (RATE_LIMIT).
    rate_limit: int | None = None
    # Operation ids this client may call; empty: every operation.
    scopes: frozenset[str] = frozenset()

    def allows(self, operation_id: str | None) -> bool:
        return not self.scopes or operation_id in self.scopes
