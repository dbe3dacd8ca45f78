"""What upstream calls did, told to whoever watches (metrics, traces, the access log), without knowing who that is.

This package exports nothing to Prometheus or OpenTelemetry itself: the client, the breakers and the bulkheads call
the hooks below, and the observers registered with `add_observer` (config/metrics.py and config/tracing.py register
theirs at start-up) turn them into metrics and spans. With no observer registered, each hook is an empty loop.

    observed            decorates `UpstreamClient.fetch_json`: times the call and ends it with a `CallRecord`
                        (upstream, outcome as in Server-Timing, cache result, retries, seconds, error code), appended
                        to the request's `request_calls` list (the access log's per-upstream summary) and handed to
                        every observer; observers also hear of the call's start (tracing opens its span there)
    retried             the current call makes one more attempt
    outgoing            the headers of an upstream request about to be sent (tracing adds `traceparent`)
    breaker_changed     a circuit breaker entered a state (in this process's view)
    bulkhead_changed    a bulkhead's slots in use changed; `bulkhead_rejected`: a call found no slot in time

Outcomes, as the Server-Timing header says them: `miss`, `hit`, `revalidated`, `stale`, `shared`, `retried` (the
call needed more than one attempt and got an answer), an error code (`upstream_timeout`, `circuit_open`, ...), or
`cancelled` (the request gave up on the call: a required call failed elsewhere, or the client went away).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from .errors import UpstreamError

__all__ = [
    "CallRecord",
    "Observer",
    "add_observer",
    "breaker_changed",
    "bulkhead_changed",
    "bulkhead_rejected",
    "observed",
    "observers",
    "outgoing",
    "remove_observer",
    "request_calls",
    "retried",
]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One finished upstream call."""

    upstream: str
    outcome: str  # see the module docstring
    cache: str  # miss, hit, revalidated, stale or shared; "miss" for a call that failed with no cached answer
    retries: int  # attempts after the first, made by this call
    seconds: float
    error: str | None = None  # the error code, for a failed call


class Observer:
    """Override what you watch; every hook is called on the event loop, inline, and must not block or raise."""

    def call_started(self, upstream: str) -> Any:
        """A call begins; what this returns comes back to `call_ended` (a span, for tracing)."""
        return None

    def call_ended(self, record: CallRecord, started: Any) -> None: ...

    def retried(self, upstream: str) -> None: ...

    def outgoing(self, headers: dict[str, str], started: Any) -> None:
        """The current call sends a request with `headers` (editable); `started` is what `call_started` returned."""

    def breaker_changed(self, upstream: str, state: str) -> None: ...

    def bulkhead_changed(self, upstream: str, in_use: int) -> None: ...

    def bulkhead_rejected(self, upstream: str) -> None: ...


# A tuple, replaced (never mutated) on change: a hook iterating it is never disturbed by a registration.
_observers: tuple[Observer, ...] = ()

# Set by the web layer per request (a fresh list); calls made while serving it append their records (the fan-out's
# tasks copy the context, so they share the list).
request_calls: ContextVar[list[CallRecord] | None] = ContextVar("tributary_request_calls", default=None)


class _Call:
    """A call in progress: its retries so far, and what each observer made of its start."""

    __slots__ = ("observers", "retries", "states")

    def __init__(self, observers: tuple[Observer, ...]) -> None:
        self.observers = observers
        self.states: list[Any] = []
        self.retries = 0


# The call in progress in this context, for `retried` and `outgoing`. The single-flight task that does the HTTP work
# for coalesced callers copies its first caller's context, so its retries and requests are that caller's.
_current: ContextVar[_Call | None] = ContextVar("tributary_current_call", default=None)


def add_observer(observer: Observer) -> None:
    global _observers
    if observer not in _observers:
        _observers = (*_observers, observer)


def remove_observer(observer: Observer) -> None:
    global _observers
    _observers = tuple(o for o in _observers if o is not observer)


def observers() -> tuple[Observer, ...]:
    return _observers


class _Result(Protocol):
    @property
    def cache(self) -> str: ...

    @property
    def attempts(self) -> int: ...


class _Named(Protocol):
    name: str


S = TypeVar("S", bound=_Named)
P = ParamSpec("P")
R = TypeVar("R", bound=_Result)


def observed(method: Callable[Concatenate[S, P], Awaitable[R]]) -> Callable[Concatenate[S, P], Awaitable[R]]:
    """Decorate an upstream client's call method (its `self.name` is the upstream): see the module docstring."""

    @functools.wraps(method)
    async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        watching = _observers
        collected = request_calls.get()
        if not watching and collected is None:
            return await method(self, *args, **kwargs)
        upstream = self.name
        current = _Call(watching)
        token = _current.set(current)
        current.states = [observer.call_started(upstream) for observer in watching]
        began = time.perf_counter()
        record: CallRecord | None = None
        try:
            result = await method(self, *args, **kwargs)
            outcome = "retried" if current.retries and result.cache == "miss" else result.cache
            record = CallRecord(upstream, outcome, result.cache, current.retries, time.perf_counter() - began)
            return result
        except UpstreamError as exc:
            record = CallRecord(upstream, exc.code, "miss", current.retries, time.perf_counter() - began, exc.code)
            raise
        except asyncio.CancelledError:
            seconds = time.perf_counter() - began
            record = CallRecord(upstream, "cancelled", "miss", current.retries, seconds, "cancelled")
            raise
        finally:
            _current.reset(token)
            if record is not None:  # None: a bug's exception, which the problem handler logs
                if collected is not None:
                    collected.append(record)
                for observer, state in zip(watching, current.states, strict=True):
                    observer.call_ended(record, state)

    return call


def retried(upstream: str) -> None:
    current = _current.get()
    if current is not None:
        current.retries += 1
    for observer in _observers:
        observer.retried(upstream)


def outgoing(headers: dict[str, str]) -> None:
    current = _current.get()
    if current is not None:
        for observer, state in zip(current.observers, current.states, strict=True):
            observer.outgoing(headers, state)


def breaker_changed(upstream: str, state: str) -> None:
    for observer in _observers:
        observer.breaker_changed(upstream, state)


def bulkhead_changed(upstream: str, in_use: int) -> None:
    for observer in _observers:
        observer.bulkhead_changed(upstream, in_use)


def bulkhead_rejected(upstream: str) -> None:
    for observer in _observers:
        observer.bulkhead_rejected(upstream)
