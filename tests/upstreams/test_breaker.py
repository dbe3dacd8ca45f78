"""CircuitBreaker: when it opens, what it reports while open, the half-open probe, and which errors count (is_fault).

Time is a fake clock injected into the breaker: no test sleeps.
"""

from __future__ import annotations

import pytest

from upstreams.breaker import BUCKETS, BreakerState, CircuitBreaker, is_fault
from upstreams.config import BreakerPolicy
from upstreams.errors import (
    CircuitOpen,
    DeadlineExceeded,
    DependencyFailed,
    UpstreamBadContentType,
    UpstreamBadResponse,
    UpstreamConnectError,
    UpstreamError,
    UpstreamInvalidJSON,
    UpstreamNotFound,
    UpstreamPayloadInvalid,
    UpstreamProtocolError,
    UpstreamSaturated,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

NAME = "catalog"
# Only consecutive faults can open this one (at 3; the ratio needs more calls than any test makes); open for 5 s.
POLICY = BreakerPolicy(failures=3, failure_ratio=0.5, min_calls=1000, window=10.0, cooldown=5.0)
# Only the failure ratio can open this one (the consecutive threshold is out of reach).
RATIO_ONLY = BreakerPolicy(failures=100, failure_ratio=0.5, min_calls=4, window=10.0, cooldown=5.0)

NON_FAULTS = [
    pytest.param(UpstreamNotFound(NAME), id="404"),
    pytest.param(UpstreamStatusError(NAME, 400), id="400"),
    pytest.param(UpstreamStatusError(NAME, 422), id="422"),
    pytest.param(UpstreamBadResponse(NAME), id="bad-response"),
    pytest.param(UpstreamBadContentType(NAME), id="bad-content-type"),
    pytest.param(UpstreamInvalidJSON(NAME), id="invalid-json"),
    pytest.param(UpstreamPayloadInvalid(NAME, {"id": "required"}), id="invalid-payload"),
    pytest.param(CircuitOpen(NAME, retry_after=1.0), id="circuit-open"),
    pytest.param(UpstreamSaturated(NAME), id="saturated"),
    pytest.param(DeadlineExceeded(NAME), id="request-deadline"),  # the client's time limit, not the upstream's health
    pytest.param(DependencyFailed(NAME, "inventory"), id="dependency-failed"),
]


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(NAME, POLICY, clock=clock)


def fault() -> UpstreamError:
    return UpstreamTimeout(NAME)


def call(breaker: CircuitBreaker, error: UpstreamError | None = None) -> None:
    """One admitted call that ends with `error` (None: the upstream answered)."""
    probe = breaker.before_call()
    breaker.record(error, probe=probe)


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.policy.failures):
        call(breaker, fault())
    assert breaker.state is BreakerState.OPEN


# is_fault


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(UpstreamTimeout(NAME), id="timeout"),
        pytest.param(UpstreamConnectError(NAME), id="connect"),
        pytest.param(UpstreamUnavailable(NAME), id="unavailable"),
        pytest.param(UpstreamProtocolError(NAME), id="protocol"),
        pytest.param(UpstreamStatusError(NAME, 500), id="500"),
        pytest.param(UpstreamStatusError(NAME, 503), id="503"),
        pytest.param(UpstreamStatusError(NAME, 429), id="429"),
    ],
)
def test_is_fault_true_for_unhealthy_upstream(error: UpstreamError) -> None:
    assert is_fault(error)


@pytest.mark.parametrize("error", NON_FAULTS)
def test_is_fault_false_for_answers_and_our_own_fail_fast_errors(error: UpstreamError) -> None:
    assert not is_fault(error)


def test_outcomes_stay_in_the_failure_ratio_for_the_window_and_leave_within_one_bucket_after(clock: FakeClock) -> None:
    for elapsed, counted in [(RATIO_ONLY.window * 0.99, True), (RATIO_ONLY.window * (1 + 1.01 / BUCKETS), False)]:
        breaker = CircuitBreaker(NAME, RATIO_ONLY, clock=clock)
        for _ in range(2):
            call(breaker, fault())
        clock.advance(elapsed)
        call(breaker)
        call(breaker, fault())  # with the two old faults: 3 of 4, the breaker opens; without them: 2 calls only

        assert (breaker.state is BreakerState.OPEN) is counted, elapsed


def test_the_window_holds_a_bounded_number_of_buckets_at_any_call_rate(clock: FakeClock) -> None:
    breaker = CircuitBreaker(NAME, RATIO_ONLY, clock=clock)
    for _ in range(20_000):  # 20,000 calls over 4 windows
        call(breaker)
        clock.advance(RATIO_ONLY.window * 4 / 20_000)

    assert len(breaker._window.buckets) <= BUCKETS + 2
    assert breaker._window.calls <= 20_000 * (1 + 2 / BUCKETS) / 4


# Opening


def test_new_breaker_is_closed_and_admits_calls(breaker: CircuitBreaker) -> None:
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()  # does not raise
    assert breaker.retry_after is None


def test_breaker_opens_after_consecutive_faults(breaker: CircuitBreaker) -> None:
    call(breaker, fault())
    call(breaker, fault())
    assert breaker.state is BreakerState.CLOSED

    call(breaker, fault())

    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_success_resets_consecutive_fault_count(breaker: CircuitBreaker) -> None:
    call(breaker, fault())
    call(breaker, fault())
    call(breaker)
    assert breaker.snapshot()["consecutive_failures"] == 0

    call(breaker, fault())
    call(breaker, fault())

    assert breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize("error", NON_FAULTS)
def test_non_fault_errors_never_open_breaker(clock: FakeClock, error: UpstreamError) -> None:
    breaker = CircuitBreaker(NAME, BreakerPolicy(failures=1, failure_ratio=0.1, min_calls=1), clock=clock)

    for _ in range(10):
        call(breaker, error)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["consecutive_failures"] == 0


def test_breaker_opens_on_failure_ratio_once_min_calls_reached(clock: FakeClock) -> None:
    breaker = CircuitBreaker(NAME, RATIO_ONLY, clock=clock)
    call(breaker)
    call(breaker, fault())
    call(breaker)
    assert breaker.state is BreakerState.CLOSED  # 1 of 3: below min_calls anyway

    call(breaker, fault())  # 2 of 4 = 0.5

    assert breaker.state is BreakerState.OPEN


def test_failure_ratio_does_not_open_before_min_calls(clock: FakeClock) -> None:
    breaker = CircuitBreaker(NAME, RATIO_ONLY, clock=clock)

    for _ in range(RATIO_ONLY.min_calls - 1):
        call(breaker, fault())  # a ratio of 1.0, but too few calls to judge

    assert breaker.state is BreakerState.CLOSED


def test_failure_ratio_below_threshold_keeps_breaker_closed(clock: FakeClock) -> None:
    breaker = CircuitBreaker(NAME, RATIO_ONLY, clock=clock)

    for _ in range(10):
        call(breaker)
        call(breaker)
        call(breaker, fault())  # 1 in 3

    assert breaker.state is BreakerState.CLOSED


def test_outcomes_older_than_window_leave_failure_ratio(clock: FakeClock) -> None:
    breaker = CircuitBreaker(NAME, RATIO_ONLY, clock=clock)
    for _ in range(3):
        call(breaker, fault())
    clock.advance(RATIO_ONLY.window + 1)

    call(breaker)
    call(breaker, fault())  # with the old faults this would be 4 of 5; without them it is 2 calls

    assert breaker.state is BreakerState.CLOSED


# Open


def test_open_breaker_rejects_with_remaining_cooldown_as_retry_after(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(2.0)

    with pytest.raises(CircuitOpen) as caught:
        breaker.before_call()

    assert caught.value.retry_after == pytest.approx(POLICY.cooldown - 2.0)
    assert caught.value.upstream == NAME
    assert breaker.retry_after == pytest.approx(POLICY.cooldown - 2.0)


def test_open_breaker_stays_open_until_cooldown_passes(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(POLICY.cooldown - 0.01)

    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        breaker.before_call()


# Half-open


def test_breaker_is_half_open_after_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(POLICY.cooldown)

    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.retry_after is None


def test_half_open_breaker_admits_exactly_one_probe(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(POLICY.cooldown)

    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpen) as caught:
        breaker.before_call()  # a second call while the probe is in flight

    assert 0 < caught.value.retry_after <= POLICY.cooldown
    assert breaker.state is BreakerState.HALF_OPEN


def test_successful_probe_closes_breaker(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(POLICY.cooldown)
    probe = breaker.before_call()

    breaker.record(None, probe=probe)

    assert probe is True
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["consecutive_failures"] == 0
    breaker.before_call()  # admitted
    breaker.before_call()  # and so is the next: no probe limit once closed


@pytest.mark.parametrize("error", [UpstreamNotFound(NAME), UpstreamStatusError(NAME, 400)])
def test_probe_answered_with_non_fault_closes_breaker(
    breaker: CircuitBreaker, clock: FakeClock, error: UpstreamError
) -> None:
    trip(breaker)
    clock.advance(POLICY.cooldown)
    probe = breaker.before_call()

    breaker.record(error, probe=probe)

    assert breaker.state is BreakerState.CLOSED


def test_closing_breaker_starts_a_fresh_window(clock: FakeClock) -> None:
    breaker = CircuitBreaker(NAME, BreakerPolicy(failures=3, failure_ratio=0.5, min_calls=4, window=60.0), clock=clock)
    trip(breaker)
    clock.advance(breaker.policy.cooldown)
    call(breaker)  # the probe succeeds

    call(breaker, fault())  # with the faults from before it opened, this would be 4 of 5

    assert breaker.state is BreakerState.CLOSED


def test_failed_probe_reopens_with_fresh_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(POLICY.cooldown + 3.0)
    probe = breaker.before_call()

    breaker.record(fault(), probe=probe)

    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen) as caught:
        breaker.before_call()
    assert caught.value.retry_after == pytest.approx(POLICY.cooldown)
    clock.advance(POLICY.cooldown)
    assert breaker.state is BreakerState.HALF_OPEN


def test_release_frees_probe_slot(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(POLICY.cooldown)
    probe = breaker.before_call()

    breaker.release(probe=probe)  # the probe was cancelled: no verdict

    assert breaker.state is BreakerState.HALF_OPEN
    breaker.before_call()  # a new probe is admitted
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_release_by_call_admitted_before_opening_keeps_probe_slot_taken(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    slow = breaker.before_call()  # a slow call, admitted while closed
    trip(breaker)
    clock.advance(POLICY.cooldown)
    assert breaker.before_call() is True  # the probe

    breaker.release(probe=slow)  # the slow call is cancelled (its client went away)

    with pytest.raises(CircuitOpen):
        breaker.before_call()  # the probe is still in flight: no second one


def test_successful_probe_closes_breaker_despite_late_fault_from_earlier_call(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    slow = breaker.before_call()  # a slow call, admitted while closed
    trip(breaker)
    clock.advance(POLICY.cooldown)
    probe = breaker.before_call()  # the probe

    breaker.record(fault(), probe=slow)  # the slow call finally times out
    breaker.record(None, probe=probe)  # the probe succeeds

    assert breaker.state is BreakerState.CLOSED


# Disabled


def test_zero_failures_disables_breaker(clock: FakeClock) -> None:
    breaker = CircuitBreaker(NAME, BreakerPolicy(failures=0, min_calls=1, failure_ratio=0.1), clock=clock)

    for _ in range(50):
        call(breaker, fault())

    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()  # still admitted
    assert breaker.snapshot() == {"state": "closed", "consecutive_failures": 0, "retry_after": None}


# snapshot


def test_snapshot_when_closed_reports_consecutive_faults(breaker: CircuitBreaker) -> None:
    call(breaker, fault())
    call(breaker, fault())

    assert breaker.snapshot() == {"state": "closed", "consecutive_failures": 2, "retry_after": None}


def test_snapshot_when_open_reports_remaining_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(1.5)

    snapshot = breaker.snapshot()

    assert snapshot["state"] == "open"
    assert snapshot["consecutive_failures"] == POLICY.failures
    assert snapshot["retry_after"] == pytest.approx(POLICY.cooldown - 1.5)


def test_snapshot_when_half_open_has_no_retry_after(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(POLICY.cooldown)

    snapshot = breaker.snapshot()

    assert snapshot["state"] == "half_open"
    assert snapshot["retry_after"] is None
