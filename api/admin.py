"""The admin site (/admin/): clients and their keys, and the middleware only the admin's pages get.

The admin needs sessions, authentication and messages, whose Django middleware is sync (a thread hop per request).
`AdminOnlyMiddleware` runs them for /admin/ paths only, so the API's requests never pay for them. Django's
admin.E408-E410 checks look for them in MIDDLEWARE and are silenced in config/settings/base.py for this reason; the
admin's views protect themselves against CSRF (`csrf_protect` on every admin view).

A key is made in the admin like with `manage.py create_api_key`: its value is shown once, in the confirmation.
Revoking (the list's action, or setting "revoked") takes effect at once in this worker and within
`API_KEY_CACHE_TTL` seconds in the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import markcoroutinefunction
from django.contrib import admin, messages
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone

from .clients.keys import create_key
from .clients.models import ApiKey, Client

__all__ = ["ADMIN_PREFIX", "AdminOnlyMiddleware"]

ADMIN_PREFIX = "/admin/"


class AdminOnlyMiddleware:
    """Sessions, authentication and messages around the admin's requests, and nothing around the others."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]) -> None:
        self.get_response = get_response
        self.admin_chain: Any = SessionMiddleware(AuthenticationMiddleware(MessageMiddleware(get_response)))
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info.startswith(ADMIN_PREFIX):
            return await self.admin_chain(request)
        return await self.get_response(request)


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ("prefix", "name", "created", "last_used", "expires", "revoked")
    readonly_fields = ("prefix", "name", "created", "last_used")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # keys are made on the API key page, which shows the new key once


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ("name", "active", "rate_limit", "created")
    list_filter = ("active",)
    search_fields = ("name", "description")
    inlines = [ApiKeyInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "client", "name", "created", "last_used", "expires", "revoked")
    list_filter = ("client",)
    search_fields = ("prefix", "name", "client__name")
    readonly_fields = ("prefix", "created", "last_used")
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("client", "name", "expires")
        return ("client", "name", "prefix", "created", "last_used", "expires", "revoked")

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        new = create_key(obj.client, name=obj.name, expires=obj.expires)
        obj.pk, obj.prefix, obj.digest, obj.created = (
            new.record.pk,
            new.record.prefix,
            new.record.digest,
            new.record.created,
        )
        messages.warning(request, f"The new key, shown this once (store it now): {new.key}")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for key in queryset.filter(revoked__isnull=True):  # one by one: each save tells this worker's cache
            key.revoked = timezone.now()
            key.save(update_fields=["revoked"])
            revoked += 1
        messages.success(request, f"Revoked {revoked} key(s).")
