"""DRF serializers: the shapes of what upstreams send us (validated before use) and of what we send clients.

Upstream payload serializers are named after the upstream (`Catalog...`, `Inventory...`); they validate only what we
use, and ignore extra keys so an upstream can add fields without breaking us. Response serializers are what the
OpenAPI schema publishes; `extend_schema_serializer(many=False)` marks bodies of `list` actions that are objects.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from .problems import PROBLEM_CODE_CHOICES

CURRENCY = r"^[A-Z]{3}$"

# --- What upstreams send ------------------------------------------------------------------------------------------


class SlowItem(serializers.Serializer):
    id = serializers.IntegerField()
    value = serializers.CharField(allow_blank=True)


class SlowData(serializers.Serializer):
    source = serializers.CharField()  # type: ignore[assignment]  # a declared field, not Field.source
    message = serializers.CharField(allow_blank=True)
    latency_ms = serializers.FloatField(min_value=0)
    items = SlowItem(many=True)


class CatalogProduct(serializers.Serializer):
    id = serializers.IntegerField(min_value=1)
    sku = serializers.CharField(max_length=64)
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    category = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)
    currency = serializers.RegexField(CURRENCY)
    tags = serializers.ListField(child=serializers.CharField(), required=False, default=list)


class CatalogPage(serializers.Serializer):
    total = serializers.IntegerField(min_value=0)
    page = serializers.IntegerField(min_value=1)
    page_size = serializers.IntegerField(min_value=1)
    items = CatalogProduct(many=True)


class InventoryStock(serializers.Serializer):
    sku = serializers.CharField()
    available = serializers.IntegerField(min_value=0)
    warehouse = serializers.CharField()
    updated_at = serializers.DateTimeField()


class ReviewsSummary(serializers.Serializer):
    product_id = serializers.IntegerField()
    average_rating = serializers.FloatField(min_value=0, max_value=5, allow_null=True)
    count = serializers.IntegerField(min_value=0)


class FxRates(serializers.Serializer):
    base = serializers.RegexField(CURRENCY)
    as_of = serializers.DateField()
    rates = serializers.DictField(child=serializers.DecimalField(max_digits=18, decimal_places=6, min_value=0))


# --- What clients receive -----------------------------------------------------------------------------------------


class MissingPart(serializers.Serializer):
    """One optional part of a response that could not be filled, and why."""

    source = serializers.CharField(  # type: ignore[assignment]  # a declared field, not Field.source
        help_text="The part of the response that is missing (e.g. `reviews`)."
    )
    upstream = serializers.CharField(help_text="The upstream service that part comes from.")
    code = serializers.CharField(help_text="Machine-readable reason, e.g. `upstream_timeout` (see the README).")
    detail = serializers.CharField(help_text="Human-readable reason.")
    path = serializers.CharField(
        required=False,
        help_text="For one item of a list: the field left null, e.g. `results[3].inventory`. Absent when the whole "
        "part is missing.",
    )


class StalePart(serializers.Serializer):
    """A part answered from the last good response because its upstream failed (stale-if-error)."""

    source = serializers.CharField(  # type: ignore[assignment]  # a declared field, not Field.source
        help_text="The part of the response that is stale."
    )
    upstream = serializers.CharField(help_text="The upstream service that part comes from.")
    code = serializers.CharField(help_text="Machine-readable reason, e.g. `upstream_timeout` (see the README).")
    detail = serializers.CharField(help_text="Human-readable reason.")
    age = serializers.FloatField(help_text="Seconds since the stale copy was fetched.")


@extend_schema_serializer(many=False)
class ExternalData(SlowData):
    """One upstream payload, validated and passed on."""


@extend_schema_serializer(many=False)
class MultipleExternalData(serializers.Serializer):
    results = SlowData(many=True, help_text="The three upstream payloads, in a fixed order (slow_data_1..3).")


class Money(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.RegexField(CURRENCY)


class ConvertedPrice(Money):
    rate = serializers.DecimalField(
        max_digits=18, decimal_places=6, help_text="Units of `currency` per unit of the original currency."
    )


class Product(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    category = serializers.CharField()
    price = Money()
    tags = serializers.ListField(child=serializers.CharField())


class StockLevel(serializers.Serializer):
    available = serializers.IntegerField(help_text="Units available.")
    in_stock = serializers.BooleanField(help_text="Whether any unit is available.")


class ProductListItem(Product):
    """A product of a page, enriched with its stock (inventory, in batches) and rating (reviews, per product)."""

    inventory = StockLevel(
        allow_null=True, help_text="Null when the inventory service did not return this product (see `missing`)."
    )
    average_rating = serializers.FloatField(
        allow_null=True,
        help_text="1.0 to 5.0; null when the product has no reviews, or when the reviews service did not answer for "
        "it (then `missing` has an entry with this field's path).",
    )


@extend_schema_serializer(many=False)
class ProductPage(serializers.Serializer):
    count = serializers.IntegerField(help_text="Products in the whole catalog.")
    next = serializers.URLField(allow_null=True, help_text="The next page, or null on the last page.")
    previous = serializers.URLField(allow_null=True, help_text="The previous page, or null on the first page.")
    results = ProductListItem(many=True)
    missing = MissingPart(
        many=True, help_text="Items whose stock or rating could not be filled, each with its `path`; empty if none."
    )
    stale = StalePart(many=True, help_text="Parts answered from a cached copy because the upstream failed.")


class Stock(serializers.Serializer):
    available = serializers.IntegerField()
    in_stock = serializers.BooleanField()
    warehouse = serializers.CharField()
    updated_at = serializers.DateTimeField()


class Reviews(serializers.Serializer):
    average_rating = serializers.FloatField(allow_null=True, help_text="Null when there are no reviews.")
    count = serializers.IntegerField()


class ProductOverview(Product):
    """A product composed from catalog, inventory, reviews and fx; optional parts are null when missing."""

    converted_price = ConvertedPrice(
        allow_null=True, help_text="The price in `?currency=`; null when not asked for or not available."
    )
    inventory = Stock(allow_null=True, help_text="Null when the inventory service failed (see `missing`).")
    reviews = Reviews(allow_null=True, help_text="Null when the reviews service failed (see `missing`).")
    missing = MissingPart(many=True, help_text="Optional parts that could not be filled; empty when complete.")
    stale = StalePart(many=True, help_text="Parts answered from a cached copy because the upstream failed.")


class Circuit(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=["closed", "open", "half_open"],
        help_text="closed: calls flow; open: calls fail fast (`circuit_open`); half_open: one probe call at a time.",
    )
    consecutive_failures = serializers.IntegerField()
    retry_after = serializers.FloatField(allow_null=True, help_text="Seconds until a probe is allowed (when open).")


@extend_schema_serializer(many=False)
class UpstreamInfo(serializers.Serializer):
    name = serializers.CharField()
    host = serializers.CharField(help_text="Host and port only; never credentials or headers.")
    timeout = serializers.FloatField(help_text="Seconds allowed for a whole call.")
    connect_timeout = serializers.FloatField(help_text="Seconds allowed to connect.")
    max_connections = serializers.IntegerField()
    max_body_bytes = serializers.IntegerField()
    retries = serializers.IntegerField(help_text="Extra attempts for retryable failures.")
    retry_backoff = serializers.FloatField(help_text="Seconds: the first retry's full-jitter backoff cap.")
    retry_backoff_max = serializers.FloatField(help_text="Seconds: the largest backoff cap.")
    retry_after_max = serializers.FloatField(help_text="Longest upstream `Retry-After` honoured, in seconds.")
    breaker_failures = serializers.IntegerField(help_text="Consecutive faults that open the circuit; 0: no breaker.")
    breaker_failure_ratio = serializers.FloatField(help_text="Share of faults in the window that opens the circuit.")
    breaker_min_calls = serializers.IntegerField(help_text="Calls in the window before the ratio counts.")
    breaker_window = serializers.FloatField(help_text="Seconds of calls the failure ratio looks at.")
    breaker_cooldown = serializers.FloatField(help_text="Seconds open before a probe call is let through.")
    max_concurrency = serializers.IntegerField(help_text="Bulkhead: concurrent calls allowed per worker.")
    queue_timeout = serializers.FloatField(help_text="Seconds a call may wait for a bulkhead slot.")
    coalesce = serializers.BooleanField(help_text="Identical concurrent GETs share one upstream request.")
    cache_ttl = serializers.FloatField(help_text="Seconds a response is cached when the upstream does not say.")
    stale_if_error = serializers.FloatField(help_text="Seconds past freshness a cached copy may stand in.")
    circuit = Circuit(help_text="This worker's circuit breaker for the upstream.")


@extend_schema_serializer(many=False)
class UpstreamList(serializers.Serializer):
    deadline = serializers.FloatField(help_text="Seconds a whole request may spend on upstream calls.")
    results = UpstreamInfo(many=True)


@extend_schema_serializer(many=False)
class Health(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])


@extend_schema_serializer(many=False)
class Readiness(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["ready", "degraded", "unavailable"],
        help_text="ready: every circuit closed; degraded: some open; unavailable (503): all open.",
    )
    circuits = serializers.DictField(
        child=serializers.ChoiceField(choices=["closed", "open", "half_open"]), help_text="Circuit state by upstream."
    )


# --- Query parameters ---------------------------------------------------------------------------------------------


# A query is validated as given (TributaryViewSet.query() passes a plain dict): DRF would take an empty `?page=` for
# an absent one, and its IntegerField would take `+5`, ` 5`, `5\n`, `5.0` and non-ASCII digits, none of which the
# schema's `type: integer` allows.


class QueryInteger(serializers.IntegerField):
    """An integer written the way the schema says: ASCII digits, an optional minus sign, nothing around them."""

    _DIGITS = re.compile(r"-?[0-9]+", flags=re.ASCII)

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, str) or not self._DIGITS.fullmatch(data) or len(data) > self.MAX_STRING_LENGTH:
            self.fail("invalid")
        return int(data)


class ProductListQuery(serializers.Serializer):
    page = QueryInteger(min_value=1, max_value=100_000, default=1, help_text="1-based page number.")
    page_size = QueryInteger(min_value=1, max_value=100, default=20, help_text="Products per page.")


class ProductOverviewQuery(serializers.Serializer):
    currency = serializers.RegexField(
        CURRENCY,
        required=False,
        trim_whitespace=False,  # " EUR" is not what the pattern allows
        help_text="ISO 4217 code (e.g. `EUR`) to convert the price into.",
        error_messages={"invalid": "Must be a three-letter upper-case currency code such as EUR."},
    )

    def validate_currency(self, value: str) -> str:
        if value.endswith("\n"):  # Python's `$` (the pattern's, as the schema publishes it) matches before one
            raise serializers.ValidationError(self.fields["currency"].error_messages["invalid"], code="invalid")
        return value


# --- Errors -------------------------------------------------------------------------------------------------------


class FieldError(serializers.Serializer):
    field = serializers.CharField(help_text="Path of the failing field, e.g. `page` or `items[3].price`.")
    code = serializers.CharField(help_text="Machine-readable reason, e.g. `invalid`, `min_value`, `required`.")
    message = serializers.CharField(required=False, help_text="Human-readable reason (client input errors only).")


class Problem(serializers.Serializer):
    """An RFC 9457 problem document (media type `application/problem+json`)."""

    type = serializers.CharField(help_text="URI identifying the problem type: `urn:tributary:problem:<code>`.")
    title = serializers.CharField(help_text="Short summary of the HTTP status.")
    status = serializers.IntegerField(help_text="The HTTP status code.")
    detail = serializers.CharField(help_text="Explanation of this occurrence; never contains internal details.")
    code = serializers.ChoiceField(
        choices=PROBLEM_CODE_CHOICES,
        help_text="Machine-readable error code (the README's error table says when each is used).",
    )
    request_id = serializers.CharField(allow_null=True, help_text="The request's X-Request-ID, for support.")
    upstream = serializers.CharField(required=False, help_text="The upstream service involved, if any.")
    errors = FieldError(  # type: ignore[assignment]  # a declared field, not Serializer.errors
        many=True, required=False, help_text="Field-level errors (400, and bad upstream payloads)."
    )
