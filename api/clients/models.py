"""Clients of the API and their keys.

A client is a consumer of the API (an app, a team, a partner); it holds any number of keys, so a key can be rotated
without downtime: create the new one, deploy it, revoke the old one. A key is shown once, when it is created
(`manage.py create_api_key`); the database keeps only its SHA-256 and a short lookup prefix. Keys are 238 random
bits, so a fast hash is enough: there is nothing to brute-force that a slow KDF would protect.
"""

from __future__ import annotations

from datetime import datetime

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

__all__ = ["ApiKey", "Client"]


class Client(models.Model):
    name = models.SlugField(max_length=64, unique=True, help_text="Who calls: shown in logs and metrics.")
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True, help_text="An inactive client's keys are all refused.")
    rate_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Requests per rate-limit period (RATE_LIMIT_PERIOD); empty: the deployment's default.",
    )
    scopes = models.JSONField(
        default=list,
        blank=True,
        help_text='Operation ids this client may call (e.g. ["get_product_overview"]); empty: every operation.',
    )
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=100, blank=True, help_text="What this key is for (e.g. 'ios-prod').")
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="Identifies the key in lists.")
    digest = models.CharField(max_length=64, editable=False)  # hex SHA-256 of the whole key
    created = models.DateTimeField(default=timezone.now, editable=False)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    expires = models.DateTimeField(null=True, blank=True, help_text="Refused from then on; empty: never expires.")
    revoked = models.DateTimeField(null=True, blank=True, help_text="Refused from then on.")

    class Meta:
        verbose_name = "API key"
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.client.name}: {self.prefix}…" if self.client_id else self.prefix

    def usable(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.revoked is None and (self.expires is None or self.expires > now) and self.client.active
