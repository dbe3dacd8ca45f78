"""config/metrics.py records a histogram observation without `Histogram.observe` (`_Observe`): the exposition is
the library's, observation for observation, whatever the amount (on a bound, between, beyond the last, negative,
infinite, NaN)."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from config.metrics import LATENCY_BUCKETS, _Observe

AMOUNTS = [
    0.0,
    *LATENCY_BUCKETS,  # exactly on each bound: that bucket (le is "less than or equal")
    *(bound * 0.999 for bound in LATENCY_BUCKETS),
    *(bound * 1.001 for bound in LATENCY_BUCKETS),
    0.0004,
    12.5,  # beyond the last finite bound: +Inf
    1e9,
    -0.5,  # negative: the first bucket, as the library counts it
    math.inf,
    -math.inf,
]


def histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("t_seconds", "t", ["route"], buckets=LATENCY_BUCKETS, registry=registry)


@pytest.mark.parametrize("amounts", [AMOUNTS, [0.05] * 3, [math.nan, 0.2]], ids=["every-kind", "same", "nan"])
def test_the_exposition_is_the_librarys(amounts: list[float]) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    library = histogram(theirs).labels("/x")
    observe = _Observe(histogram(ours).labels("/x"))

    for amount in amounts:
        library.observe(amount)
        observe(amount)

    assert generate_latest(ours) == generate_latest(theirs)
    assert b't_seconds_count{route="/x"}' in generate_latest(ours)
