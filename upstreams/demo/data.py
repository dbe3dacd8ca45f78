"""The deterministic data set behind the demo upstreams.

Every value is derived arithmetically from an id and a few small word lists, with no randomness and no
seed, so the same request gets the same answer in every process, on every machine, in every test run.
Functions return JSON-ready dicts (typed as ``TypedDict``) and ``None`` for "no such thing"; HTTP concerns
(paths, query strings, status codes) belong to ``app.py``.
"""

from __future__ import annotations

import re
from decimal import Decimal, localcontext
from typing import Final, TypedDict

PRODUCT_COUNT: Final = 120
FX_CURRENCIES: Final = ("USD", "EUR", "GBP", "JPY", "CHF")
FX_AS_OF: Final = "2026-01-01"
SLOW_ITEM_COUNT: Final = 5

# Ten adjectives times twelve nouns give 120 distinct names, one per product.
_ADJECTIVES: Final = (
    "Amber", "Brisk", "Cobalt", "Dapper", "Electric", "Frosted", "Gilded", "Hushed", "Indigo", "Jolly",
)  # fmt: skip
# Each noun carries its category, so a "Kettle" is never filed under "garden".
_NOUNS: Final = (
    ("Kettle", "kitchen"), ("Skillet", "kitchen"), ("Teapot", "kitchen"),
    ("Lamp", "home"), ("Cushion", "home"), ("Clock", "home"),
    ("Trowel", "garden"), ("Planter", "garden"),
    ("Backpack", "outdoor"), ("Lantern", "outdoor"),
    ("Notebook", "office"), ("Stapler", "office"),
)  # fmt: skip
_TAGS: Final = ("bestseller", "eco", "gift", "handmade", "limited", "new", "sale", "sturdy")
_WAREHOUSES: Final = ("AMS-1", "FRA-2", "LHR-1", "IAD-3")
_PRICE_CENTS: Final = (99, 49, 0, 95)
_SKU: Final = re.compile(r"SKU-(\d{5})")

# Units of each currency per US dollar; every other pair is derived from this one table, so cross rates agree.
_PER_USD: Final = {
    "USD": Decimal("1"),
    "EUR": Decimal("0.92"),
    "GBP": Decimal("0.79"),
    "JPY": Decimal("151.20"),
    "CHF": Decimal("0.88"),
}
# Six significant digits keeps JPY-based rates (0.00608466) as informative as USD-based ones (0.858696).
_FX_PRECISION: Final = 6


class Product(TypedDict):
    id: int
    sku: str
    name: str
    description: str
    category: str
    price: str
    currency: str
    tags: list[str]


class ProductPage(TypedDict):
    total: int
    page: int
    page_size: int
    items: list[Product]


class Stock(TypedDict):
    sku: str
    available: int
    warehouse: str
    updated_at: str


class ReviewSummary(TypedDict):
    product_id: int
    average_rating: float | None
    count: int


class FxRates(TypedDict):
    base: str
    as_of: str
    rates: dict[str, str]


class SlowItem(TypedDict):
    id: int
    value: str


class SlowData(TypedDict):
    source: str
    message: str
    latency_ms: float
    items: list[SlowItem]


def sku_for(product_id: int) -> str:
    return f"SKU-{product_id:05d}"


def product(product_id: int) -> Product | None:
    if not 1 <= product_id <= PRODUCT_COUNT:
        return None
    index = product_id - 1
    adjective = _ADJECTIVES[index % len(_ADJECTIVES)]
    noun, category = _NOUNS[index // len(_ADJECTIVES)]
    dollars = 4 + (product_id * 37) % 196
    cents = _PRICE_CENTS[product_id % len(_PRICE_CENTS)]
    # Stride 3 over eight tags never repeats within three picks, so tags are distinct.
    tags = [_TAGS[(product_id + 3 * k) % len(_TAGS)] for k in range(1 + product_id % 3)]
    return {
        "id": product_id,
        "sku": sku_for(product_id),
        "name": f"{adjective} {noun}",
        "description": f"{adjective} {noun.lower()} for the {category}, from the demo catalog.",
        "category": category,
        "price": f"{dollars}.{cents:02d}",
        "currency": _product_currency(product_id),
        "tags": tags,
    }


def _product_currency(product_id: int) -> str:
    # About 70% USD: enough of the others that clients must not assume a single currency.
    if product_id % 5 == 2:
        return "EUR"
    if product_id % 7 == 3:
        return "GBP"
    return "USD"


def products_page(*, page: int, page_size: int) -> ProductPage:
    """One page of the catalog; pages past the end are empty rather than an error, like most paged APIs."""
    first = (page - 1) * page_size + 1
    last = min(first + page_size - 1, PRODUCT_COUNT)
    items = [p for product_id in range(first, last + 1) if (p := product(product_id)) is not None]
    return {"total": PRODUCT_COUNT, "page": page, "page_size": page_size, "items": items}


def stock(sku: str) -> Stock | None:
    match = _SKU.fullmatch(sku)
    product_id = int(match[1]) if match else 0
    if not 1 <= product_id <= PRODUCT_COUNT:
        return None
    # Every sixth product is out of stock, so "available: 0" is a case clients meet early.
    available = 0 if product_id % 6 == 0 else 1 + (product_id * 29) % 97
    return {
        "sku": sku,
        "available": available,
        "warehouse": _WAREHOUSES[product_id % len(_WAREHOUSES)],
        "updated_at": f"2026-01-01T{(product_id * 7) % 24:02d}:{(product_id * 13) % 60:02d}:00Z",
    }


def stocks(skus: list[str]) -> list[Stock]:
    """The stock of each known SKU, in the order asked, once each; unknown SKUs are left out (a batch endpoint
    answers what it knows, and the caller maps answers back by SKU)."""
    return [found for sku in dict.fromkeys(skus) if (found := stock(sku)) is not None]


def review_summary(product_id: int) -> ReviewSummary | None:
    if not 1 <= product_id <= PRODUCT_COUNT:
        return None
    # Every eighth product has no reviews yet, which is when the average is null rather than 0.
    if product_id % 8 == 0:
        return {"product_id": product_id, "average_rating": None, "count": 0}
    tenths = 10 + (product_id * 17) % 41  # 1.0 .. 5.0
    return {"product_id": product_id, "average_rating": tenths / 10, "count": 1 + (product_id * 37) % 240}


def fx_rates(base: str) -> FxRates | None:
    if base not in _PER_USD:
        return None
    with localcontext() as context:
        context.prec = _FX_PRECISION
        rates = {quote: format(per_usd / _PER_USD[base], "f") for quote, per_usd in _PER_USD.items()}
    return {"base": base, "as_of": FX_AS_OF, "rates": rates}


def slow_data(source: str, *, latency_ms: float) -> SlowData:
    return {
        "source": source,
        "message": f"{source} answered after a simulated {latency_ms:g} ms",
        "latency_ms": latency_ms,
        "items": [{"id": i, "value": f"{source}-value-{i}"} for i in range(1, SLOW_ITEM_COUNT + 1)],
    }
