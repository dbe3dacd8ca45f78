"""Everything about calling upstream HTTP JSON APIs: configuration, pooled clients, errors and concurrent fan-out.

This package never imports the web layer (DRF, adrf, django.http): `api/` builds on it, not the other way round.
"""

from .breaker import BreakerState, CircuitBreaker, is_fault
from .cache import Freshness
from .client import Fetched, TransportFactory, UpstreamClient, aiohttp_transport, httpx_transport, parse_retry_after
from .config import (
    BreakerPolicy,
    BulkheadPolicy,
    CachePolicy,
    ConfigError,
    RetryPolicy,
    UpstreamConfig,
    env_prefix,
    parse_upstreams,
)
from .context import REQUEST_ID_HEADER, deadline, incoming_headers, remaining, request_id
from .errors import (
    CircuitOpen,
    DeadlineExceeded,
    DependencyFailed,
    UpstreamBadContentType,
    UpstreamBadResponse,
    UpstreamBodyTooLarge,
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
from .fanout import Call, Outcome, fan_out, validate_calls
from .observe import CallRecord, Observer, add_observer, remove_observer, request_calls
from .registry import TRANSPORTS, UnknownUpstream, UpstreamRegistry, close_registry, get_registry, set_registry

__all__ = [
    "REQUEST_ID_HEADER",
    "TRANSPORTS",
    "BreakerPolicy",
    "BreakerState",
    "BulkheadPolicy",
    "CachePolicy",
    "Call",
    "CallRecord",
    "CircuitBreaker",
    "CircuitOpen",
    "ConfigError",
    "DeadlineExceeded",
    "DependencyFailed",
    "Fetched",
    "Freshness",
    "Observer",
    "Outcome",
    "RetryPolicy",
    "TransportFactory",
    "UnknownUpstream",
    "UpstreamBadContentType",
    "UpstreamBadResponse",
    "UpstreamBodyTooLarge",
    "UpstreamClient",
    "UpstreamConfig",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamInvalidJSON",
    "UpstreamNotFound",
    "UpstreamPayloadInvalid",
    "UpstreamProtocolError",
    "UpstreamRegistry",
    "UpstreamSaturated",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "add_observer",
    "aiohttp_transport",
    "close_registry",
    "deadline",
    "env_prefix",
    "fan_out",
    "get_registry",
    "httpx_transport",
    "incoming_headers",
    "is_fault",
    "parse_retry_after",
    "parse_upstreams",
    "remaining",
    "remove_observer",
    "request_calls",
    "request_id",
    "set_registry",
    "validate_calls",
]
