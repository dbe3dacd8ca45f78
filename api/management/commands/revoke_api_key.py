"""`manage.py revoke_api_key <prefix>`: refuse a key from now on (in every worker within API_KEY_CACHE_TTL)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from api.clients.models import ApiKey


class Command(BaseCommand):
    help = "Revoke an API key, given its prefix (the 8 characters after 'tb_'), or a client's every key with --client."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix", nargs="?", help="The key's prefix, or the whole key.")
        parser.add_argument("--client", help="Revoke every key of this client instead.")

    def handle(self, *args: Any, **options: Any) -> None:
        prefix, client = options["prefix"], options["client"]
        if (prefix is None) == (client is None):
            raise CommandError("Give a key prefix or --client, not both.")
        if prefix is not None:
            prefix = prefix[3:11] if prefix.startswith("tb_") else prefix
            keys = ApiKey.objects.filter(prefix=prefix)
            if not keys.exists():
                raise CommandError(f"No key has the prefix {prefix!r}.")
        else:
            keys = ApiKey.objects.filter(client__name=client)
        revoked = 0
        for key in keys.filter(revoked__isnull=True):
            key.revoked = timezone.now()
            key.save(update_fields=["revoked"])
            revoked += 1
        self.stdout.write(f"Revoked {revoked} key(s).")
