"""The compiled serializers agree with DRF: on generated payloads the fast path never accepts what DRF refuses and
returns exactly DRF's validated data; representations are identical; and well-typed payloads really take it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rest_framework import fields as f
from rest_framework import serializers

from api import aggregates, fastpath
from api import serializers as s
from api.aggregation import published
from upstreams.demo import data as demo

# Every serializer the declarations use: each published aggregate's fetches validate upstream payloads with the fast
# path, and its response is represented with it; plus the hand-written views' responses.
INPUTS = list(dict.fromkeys(fetch.serializer for a in published() for fetch in a.fetches.values()))
OUTPUTS = list(dict.fromkeys([*(a.response for a in published()), s.UpstreamList, s.Readiness]))

MISSING = object()
junk = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5), st.lists(st.none(), max_size=1)
)
texts = st.text(st.characters(codec=None), max_size=12)  # includes NUL, lone surrogates, whitespace


def payloads(field: Any) -> st.SearchStrategy[Any]:
    """Mostly well-typed values for `field` (so the fast path is exercised), with coercible, invalid and junk
    values mixed in at every level (so disagreements would show)."""
    tricky: st.SearchStrategy[Any] = junk
    if isinstance(field, serializers.ListSerializer):
        good: st.SearchStrategy[Any] = st.lists(payloads(field.child), max_size=3)
    elif isinstance(field, serializers.Serializer):
        entries = {name: mostly(payloads(child), st.just(MISSING)) for name, child in field.fields.items()}
        good = st.fixed_dictionaries(entries).map(lambda d: {k: v for k, v in d.items() if v is not MISSING})
    elif isinstance(field, f.ListField):
        good = st.lists(payloads(field.child), max_size=3)
    elif isinstance(field, f.DictField):
        good = st.dictionaries(st.sampled_from(["EUR", "USD", "x"]), payloads(field.child), max_size=3)
    elif isinstance(field, f.IntegerField):
        good = st.integers(0, 200)
        tricky = st.sampled_from(["7", "7.0", " 8 ", 7.0, 7.5, True, -3])
    elif isinstance(field, f.FloatField):
        good = st.one_of(st.floats(0, 5), st.integers(0, 5))
        tricky = st.sampled_from(["4.5", "nan", float("inf"), -1.0, 6])
    elif isinstance(field, f.DecimalField):
        good = st.decimals(min_value=0, max_value=10_000, places=2).map(str)
        tricky = st.sampled_from(["1e3", "12.345", 3, 2.5, "-1.00", "abc"])
    elif isinstance(field, f.DateTimeField):
        good = st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z"))
        tricky = st.one_of(st.just("2026-01-01"), texts)
    elif isinstance(field, f.DateField):
        good = st.dates().map(dt.date.isoformat)
        tricky = st.one_of(st.just("2026-13-01"), texts)
    elif isinstance(field, f.RegexField):
        good = st.sampled_from(["USD", "EUR", "GBP"])
        tricky = st.one_of(st.sampled_from(["usd", " EUR ", "EURO"]), texts)
    elif isinstance(field, f.CharField):
        good = st.text(max_size=10)
        tricky = st.one_of(texts, st.sampled_from(["", "  ", " padded "]), st.integers())
    else:
        raise AssertionError(f"no strategy for {type(field).__name__}")
    return mostly(good, tricky, junk)


def mostly(good: st.SearchStrategy[Any], *others: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` eight times in ten, else one of `others` (st.one_of would weigh every branch alike)."""
    return st.integers(0, 9).flatmap(lambda roll: good if roll < 8 else others[roll % len(others)])


@pytest.mark.parametrize("serializer_class", INPUTS, ids=lambda c: c.__name__)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_validation_never_disagrees_with_drf(serializer_class: Any, data: st.DataObject) -> None:
    payload = data.draw(mostly(payloads(serializer_class()), junk))
    try:
        fast = fastpath.validate(serializer_class, payload)
    except fastpath.Fallback:
        fast = MISSING

    drf = serializer_class(data=payload)
    valid = drf.is_valid()

    event("fast path" if fast is not MISSING else ("DRF accepted" if valid else "DRF refused"))
    if fast is not MISSING:
        assert valid, (payload, drf.errors)
        assert fast == drf.validated_data
        assert _types(fast) == _types(drf.validated_data)


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value)


@pytest.mark.parametrize(
    ("serializer_class", "payload"),
    [
        (s.CatalogProduct, demo.product(7)),
        (s.CatalogPage, {"total": 120, "page": 1, "page_size": 3, "items": [demo.product(i) for i in (1, 2, 3)]}),
        (s.InventoryStock, demo.stock("SKU-00007")),
        (s.ReviewsSummary, demo.review_summary(7)),
        (s.ReviewsSummary, demo.review_summary(8)),  # no reviews: a null average
        (s.FxRates, demo.fx_rates("USD")),
    ],
)
def test_well_typed_upstream_payloads_take_the_fast_path(serializer_class: Any, payload: Any) -> None:
    fast = fastpath.validate(serializer_class, payload)  # raises Fallback if it did not

    drf = serializer_class(data=payload)
    assert drf.is_valid()
    assert fast == drf.validated_data


def values(field: Any) -> st.SearchStrategy[Any]:
    """Internal values a response serializer is given (what the aggregates shape)."""
    if isinstance(field, serializers.ListSerializer):
        strategy: st.SearchStrategy[Any] = st.lists(values(field.child), max_size=3)
    elif isinstance(field, serializers.Serializer):
        strategy = st.fixed_dictionaries({name: values(child) for name, child in field.fields.items()})
    elif isinstance(field, f.ListField):
        strategy = st.lists(values(field.child), max_size=3)
    elif isinstance(field, f.DictField):
        strategy = st.dictionaries(st.text(max_size=3), values(field.child), max_size=3)
    elif isinstance(field, f.ChoiceField):
        strategy = st.sampled_from(list(field.choices))
    elif isinstance(field, f.BooleanField):
        strategy = st.booleans()
    elif isinstance(field, f.IntegerField):
        strategy = st.integers()
    elif isinstance(field, f.FloatField):
        strategy = st.floats(allow_nan=False, allow_infinity=False)
    elif isinstance(field, f.DecimalField):
        strategy = st.decimals(min_value=-(10**6), max_value=10**6, places=field.decimal_places)
    elif isinstance(field, f.DateTimeField):
        strategy = st.datetimes(timezones=st.just(dt.UTC))
    elif isinstance(field, f.CharField):
        strategy = st.text(max_size=8)
    else:
        raise AssertionError(f"no strategy for {type(field).__name__}")
    return st.one_of(st.none(), strategy) if field.allow_null else strategy


@pytest.mark.parametrize("serializer_class", OUTPUTS, ids=lambda c: c.__name__)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_representation_equals_drfs(serializer_class: Any, data: st.DataObject) -> None:
    instance = data.draw(values(serializer_class()))

    assert fastpath.represent(serializer_class, instance) == serializer_class(instance).data


def test_every_declared_serializer_is_checked() -> None:
    assert aggregates  # imported for its declarations
    assert {c.__name__ for c in INPUTS} >= {"SlowData", "CatalogProduct", "CatalogPage", "FxRates"}
    assert {c.__name__ for c in OUTPUTS} >= {"ExternalData", "ProductPage", "ProductOverview", "UpstreamList"}


def test_serializers_with_hooks_are_left_to_drf() -> None:
    class Hooked(serializers.Serializer):
        n = serializers.IntegerField()

        def validate_n(self, value: int) -> int:
            return value * 2

    with pytest.raises(fastpath.Fallback):
        fastpath.validate(Hooked, {"n": 1})


def test_decimal_and_money_shapes_are_represented_like_drf() -> None:
    instance = {"amount": Decimal("19.999"), "currency": "EUR", "rate": Decimal("0.9")}

    assert fastpath.represent(s.ConvertedPrice, instance) == {"amount": "20.00", "currency": "EUR", "rate": "0.900000"}
