"""`manage.py create_api_key <client>`: a new API key for a client (made if new), printed once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.text import slugify

from api.clients.keys import create_key
from api.clients.models import Client


class Command(BaseCommand):
    help = "Create an API key for a client (the client is created if it does not exist) and print it, once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("client", help="The client's name (a slug: letters, digits, - and _).")
        parser.add_argument("--name", default="", help="What the key is for (e.g. ios-prod).")
        parser.add_argument("--expires-in-days", type=int, default=None, help="Refuse the key after this many days.")
        parser.add_argument(
            "--rate-limit", type=int, default=None, help="Requests per period for this client (default: RATE_LIMIT)."
        )
        parser.add_argument(
            "--scope",
            action="append",
            default=None,
            metavar="OPERATION_ID",
            help="An operation the client may call (repeat; default: all). Replaces the client's scopes.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["client"]
        if slugify(name) != name or not name:
            raise CommandError(f"{name!r} is not a valid client name: use letters, digits, '-' and '_'.")
        days = options["expires_in_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-in-days must be at least 1.")
        rate_limit = options["rate_limit"]
        if rate_limit is not None and rate_limit < 1:
            raise CommandError("--rate-limit must be at least 1.")
        client, created = Client.objects.get_or_create(name=name)
        changed = []
        if rate_limit is not None:
            client.rate_limit = rate_limit
            changed.append("rate_limit")
        if options["scope"] is not None:
            client.scopes = sorted(set(options["scope"]))
            changed.append("scopes")
        if changed:
            client.save(update_fields=changed)
        expires = timezone.now() + timedelta(days=days) if days is not None else None
        new = create_key(client, name=options["name"], expires=expires)
        if created:
            self.stderr.write(f"Created client {name!r}.")
        self.stderr.write(
            f"Key {new.record.prefix} for {name!r}"
            + (f", expires {expires:%Y-%m-%d %H:%M} UTC" if expires else "")
            + ". It is shown only now; store it safely:"
        )
        self.stdout.write(new.key)
