"""Circuit breaker: stop calling an upstream that keeps failing, and try again carefully after a cool-down.

    closed ──(N consecutive faults, or fault ratio over the window)──▶ open ──(cooldown passes)──▶ half_open
      ▲                                                                 ▲                              │
      └──────────────────────(the probe succeeds)───────────────────────┼──────────────(the probe fails)┘

While open, calls fail at once with `CircuitOpen` (and a `retry_after`). Half-open lets one probe call through at a
time. Only upstream *faults* count (see `is_fault`): a 404 or a 400 is the upstream working as designed.

`CircuitBreaker` keeps its state in the process (the default). `upstreams.redis_breaker.RedisCircuitBreaker` keeps
it in Redis when REDIS_URL is set, shared by every worker and host. Both implement `Breaker`, the async interface the
client uses; the in-process one never awaits anything, so it costs no I/O.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from . import observe
from .config import BreakerPolicy
from .errors import (
    CircuitOpen,
    DeadlineExceeded,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamSaturated,
    UpstreamStatusError,
    UpstreamUnavailable,
)

__all__ = ["Breaker", "BreakerState", "BreakerStatus", "CircuitBreaker", "is_fault"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerStatus:
    state: BreakerState
    consecutive_failures: int
    retry_after: float | None  # seconds until a probe may go out, while open

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "consecutive_failures": self.consecutive_failures,
            "retry_after": self.retry_after,
        }


class Breaker(Protocol):
    """What the client needs from a circuit breaker, wherever its state lives."""

    name: str
    policy: BreakerPolicy

    async def acquire(self) -> bool:
        """Admit a call or raise `CircuitOpen`; True when the call is the half-open probe."""
        ...

    async def report(self, error: UpstreamError | None, *, probe: bool) -> None:
        """The admitted call's outcome: None for an answer, else its error."""
        ...

    async def abandon(self, *, probe: bool) -> None:
        """The admitted call ended with no verdict on the upstream (cancelled, or never sent)."""
        ...

    async def status(self) -> BreakerStatus: ...


def is_fault(error: UpstreamError) -> bool:
    """Does this failure say the upstream is unhealthy?

    Our own fail-fast errors do not count, nor does a request's deadline running out: that is the client's time
    limit (possibly a very short `Request-Timeout`), not the upstream's health.
    """
    if isinstance(error, CircuitOpen | UpstreamSaturated | DeadlineExceeded):
        return False
    if isinstance(error, UpstreamStatusError):
        return error.status_code >= 500 or error.status_code == 429
    return isinstance(error, UpstreamUnavailable | UpstreamProtocolError)


# The window counts outcomes in this many buckets (plus the current one): an outcome leaves the failure ratio between
# `window` and `window * (1 + 1/BUCKETS)` seconds after it happened, and the window's memory and work per call stay
# the same at any call rate (one (time, outcome) pair per call held 30 s was ~5 MB per busy upstream at 1,800 calls/s).
BUCKETS = 32


@dataclass
class _Window:
    """Outcomes of the last `window` seconds (to 1/BUCKETS of it), for the failure ratio."""

    buckets: deque[list[int]] = field(default_factory=deque)  # [bucket number, calls, failures], oldest first
    calls: int = 0
    failures: int = 0

    def add(self, now: float, failed: bool, window: float) -> None:
        number = int(now * BUCKETS / window) if window > 0 else 0
        buckets = self.buckets
        if buckets and buckets[-1][0] == number:
            bucket = buckets[-1]
            bucket[1] += 1
            bucket[2] += failed
        else:
            buckets.append([number, 1, int(failed)])
        self.calls += 1
        self.failures += failed
        while buckets[0][0] < number - BUCKETS:  # wholly older than the window
            _, calls, failures = buckets.popleft()
            self.calls -= calls
            self.failures -= failures

    def clear(self) -> None:
        self.buckets.clear()
        self.calls = self.failures = 0


class CircuitBreaker:
    """One upstream's breaker, shared by every event loop of the process. Methods never block."""

    def __init__(self, name: str, policy: BreakerPolicy, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.policy = policy
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._window = _Window()
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._cooldown_left() <= 0:
            return BreakerState.HALF_OPEN
        return self._state

    def before_call(self) -> bool:
        """Raise `CircuitOpen` unless a call may go out now; True when this call is the half-open probe.

        Pass the returned flag back to `record()` or `release()`: only the probe's outcome decides half-open.
        """
        if not self.policy.enabled:
            return False
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.OPEN:
            raise CircuitOpen(self.name, retry_after=self._cooldown_left())
        if self._probing:
            raise CircuitOpen(self.name, retry_after=min(1.0, self.policy.cooldown))
        self._state = BreakerState.HALF_OPEN
        self._probing = True
        observe.breaker_changed(self.name, BreakerState.HALF_OPEN.value)
        return True

    def record(self, error: UpstreamError | None, *, probe: bool = False) -> None:
        """The outcome of a call admitted by `before_call`: None for an answer, else the error it ended with."""
        if not self.policy.enabled:
            return
        failed = error is not None and is_fault(error)
        if probe:
            self._probing = False
            self._open() if failed else self._close()
            return
        if self._state is not BreakerState.CLOSED:
            return  # a call admitted before the breaker opened: the probe decides now, not stragglers
        self._window.add(self._clock(), failed, self.policy.window)
        self._consecutive = self._consecutive + 1 if failed else 0
        if failed and self._should_open():
            self._open()

    def release(self, *, probe: bool = False) -> None:
        """A call admitted by `before_call` ended without a verdict (cancelled, or never sent): free the probe slot."""
        if probe:
            self._probing = False

    def snapshot(self) -> dict[str, object]:
        return self._status().as_dict()

    # The `Breaker` interface: the same operations, awaitable like the shared (Redis) breaker's.

    async def acquire(self) -> bool:
        return self.before_call()

    async def report(self, error: UpstreamError | None, *, probe: bool) -> None:
        self.record(error, probe=probe)

    async def abandon(self, *, probe: bool) -> None:
        self.release(probe=probe)

    async def status(self) -> BreakerStatus:
        return self._status()

    def _status(self) -> BreakerStatus:
        return BreakerStatus(self.state, self._consecutive, self.retry_after)

    @property
    def retry_after(self) -> float | None:
        return round(self._cooldown_left(), 3) if self.state is BreakerState.OPEN else None

    def _should_open(self) -> bool:
        policy = self.policy
        if self._consecutive >= policy.failures:
            return True
        calls = self._window.calls
        return calls >= policy.min_calls and self._window.failures / calls >= policy.failure_ratio

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        observe.breaker_changed(self.name, BreakerState.OPEN.value)

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._window.clear()
        observe.breaker_changed(self.name, BreakerState.CLOSED.value)

    def _cooldown_left(self) -> float:
        return max(0.0, self._opened_at + self.policy.cooldown - self._clock())
